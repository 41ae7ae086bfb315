from satworks.devnodes.smtp.main import main

main()
