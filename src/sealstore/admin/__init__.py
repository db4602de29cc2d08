"""`sealstore admin`: whole-store maintenance jobs that run against live data.

One walker (`walker.py`) visits every object and pending upload with bounded concurrency and
rate, a checkpoint to resume from after a kill, progress for humans or machines, an audit
line per changed object and a metrics file. A job (`rewrap.py`, `verify.py`; migrate-kms and
reencrypt later) is a small class that handles one item through the object layer
(`sealstore.objects.maintenance`); it never touches a storage implementation or crypto.
"""
