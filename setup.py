"""The optional compiled part of the recorder; everything else is in pyproject.toml.

``recorder/_hotpath.c`` speeds up the sys.monitoring callbacks.  It is
optional: without a C compiler (or Python headers) the build skips it and
the recorder runs its pure-Python callbacks, which film the same events.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pytest_escope.recorder._hotpath",
            sources=["recorder/_hotpath.c"],
            optional=True,
        )
    ]
)
