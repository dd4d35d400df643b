"""A local Microsoft Graph emulator for Entra ID licensing work (see emulator/README.md)."""

from .engine import Directory, GraphError, RequestContext
from .emulator import Emulator
from .tenant import generate_tenant

__all__ = ["Directory", "Emulator", "GraphError", "RequestContext", "generate_tenant"]
__version__ = "0.1.0"
