"""The service's tests (a package, so that its conftest and helpers do not shadow the suite's
own ``conftest`` module)."""
