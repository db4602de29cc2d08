"""Users and the AWS policy language, as S3 evaluates it (issue 12, item 3).

One job per module: :mod:`.patterns` (``*``/``?`` wildcards), :mod:`.actions` (operation ->
``s3:`` action and resource kind), :mod:`.conditions` (condition operators and keys),
:mod:`.document` (parse and validate a policy document, AWS's error messages),
:mod:`.evaluate` (explicit deny, allow, default deny), :mod:`.users` (the static users file and
its SIGHUP reload) and :mod:`.authorize` (the one hook the dispatcher calls per request).

This ``__init__`` imports nothing, so any module can import one submodule without pulling the
rest (``s3.context`` imports :mod:`.users` only).
"""
