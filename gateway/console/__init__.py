"""The browser console at /console: static assets that call the public JSON API with a bearer
token, a small configuration document, and in dev mode a sign-in that mints a dev token."""
