"""The service's name and version, read from the installed project metadata when present."""

from importlib.metadata import PackageNotFoundError, version

SERVICE_NAME = "tabpfn-api"

try:
    __version__ = version(SERVICE_NAME)
except PackageNotFoundError:  # running from a checkout without the project installed
    __version__ = "0.1.0"
