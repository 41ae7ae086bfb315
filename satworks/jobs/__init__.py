"""What is done: each job type is a payload model plus the function that runs it."""
