# boot.py: runs first on every reset. Count the boot and choose the mode (startup.py) before
# anything can hang; the watchdog starts later, in the app, and never in maintenance mode.
import startup

startup.boot()
