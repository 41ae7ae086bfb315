"""Reports: a period's payments or jobs, aggregated in Postgres, rendered as CSV or HTML and stored.

``POST /v1/reports`` submits a ``report`` job (queue ``bulk``) whose payload is the ``ReportSpec``;
the job runs one aggregate query (``db/reports.py``: never a row per payment or job in Python),
renders its table (``render.py``) and stores the document with the job's id, which is the report's
id. A report covers its app's data only; an admin key may ask for every app's (``all_apps``).

Adding a kind (draws, once they exist): a member of ``ReportKind``, its aggregate query in
``db/reports.py``, and its ``Kind`` (title, columns, query) in ``kinds.KINDS``.
"""
