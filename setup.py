"""The one compiled part: the serialization stream check (see worker/boundary/_rdscheck.c for why it is C)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("worker.boundary._rdscheck", ["worker/boundary/_rdscheck.c"], extra_compile_args=["-O2", "-Wall"])
    ]
)
