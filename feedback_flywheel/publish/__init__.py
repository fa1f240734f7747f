"""What people and other programs read: the read model behind the CLI's reports, the batch
artifact and the summary (:mod:`.queries`, :mod:`.summary`, :mod:`.artifacts`), and the read-only
serving copy the dashboard and BI tools open (:mod:`.serving`)."""
