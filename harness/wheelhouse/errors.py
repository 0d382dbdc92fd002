"""The one error a wheelhouse build reports: a one-line message naming the field, file or package."""

from harness.errors import HarnessError


class WheelhouseError(HarnessError):
    """Bad input or an impossible plan; the message is shown to the user as is."""
