# main.py: the fixed skeleton (../shared/STYLE.md, lesson 6). Logic belongs in app.py.
import startup

if startup.mode == startup.MAINTENANCE:
    startup.maintenance()
else:
    import asyncio

    from app import App

    app = App()
    try:
        asyncio.run(app.run())
    finally:
        app.deinit()  # cancels every task the app created, releases the bus, stops the buzzer
        asyncio.new_event_loop()  # a clean loop for the REPL after Ctrl-C
