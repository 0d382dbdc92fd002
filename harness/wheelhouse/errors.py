"""The one error a wheelhouse build reports: a one-line message naming the field, file or package."""


class WheelhouseError(Exception):
    """Bad input or an impossible plan; the message is shown to the user as is."""
