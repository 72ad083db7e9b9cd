# The firmware version, read by app.py (FW_VERSION, FW_PATCH registers) and by the build tools.
MAJOR = 0
MINOR = 1
PATCH = 0
