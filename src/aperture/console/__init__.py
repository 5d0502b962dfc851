"""The web console on the admin port (``/console``): overview, requests, keys, models and
routes, playground.

Server-rendered pages (``pages``) and small ES modules (``static/``, no build step, no CDN),
behind a sign-in kept server-side, in the shared database (``sessions``). The pages change
nothing themselves: their scripts call the admin API with the session.
"""

from aperture.console.endpoints import console_routes
from aperture.console.sessions import CSRF_HEADER, console_session

__all__ = ["CSRF_HEADER", "console_routes", "console_session"]
