"""The one error of the policy package: a document S3 would refuse, with AWS's wording.

The bucket-policy handler answers it as ``400 MalformedPolicy`` with this message; the users
file loader prefixes it with the file, user and policy it came from.
"""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy document is not valid; ``str()`` says what is wrong (never a secret)."""
