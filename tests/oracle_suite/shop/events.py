"""Call logging and a tiny event bus, the way applications wire callbacks."""

import functools


def log_calls(sink):
    """Decorator: hands ``(name, args)`` of every call to ``sink``."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            sink((fn.__name__, args))
            return fn(*args)
        return wrapper
    return decorate


class Bus:
    def __init__(self):
        self.handlers = {}

    def on(self, topic, handler):
        self.handlers.setdefault(topic, []).append(handler)

    def emit(self, topic, payload):
        delivered = 0
        for handler in self.handlers.get(topic, []):
            handler(payload)
            delivered += 1
        return delivered


class Register:
    """Keeps the callback it was given and calls it through an attribute."""

    def __init__(self, notify):
        self.notify = notify
        self.sold = 0

    def sell(self, sku):
        self.sold += 1
        self.notify(sku)
        return self.sold
