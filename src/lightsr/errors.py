"""One exception type for everything a user can get wrong.

The CLI turns a :class:`LightSRError` into a single line on stderr and exit code 2; library users
catch it like any other exception. Raise it with a message that names the problem and, where it
helps, the fix ("checkpoint x.pth was trained for x2, but the model is x4").
"""


class LightSRError(Exception):
    """A problem with the user's input: files, images, names, scales, checkpoints."""
