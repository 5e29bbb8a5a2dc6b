"""The one error type the export stages raise for problems a user can fix."""


class ExportError(RuntimeError):
    """A stage could not run or produced a bad result; the message names the file and the fix."""
