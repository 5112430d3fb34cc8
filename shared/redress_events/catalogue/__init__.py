"""Every event Redress writes, one module per domain. Importing this package registers them all."""

from redress_events.catalogue.complaints import (
    ComplaintReceived,
    ComplaintSubmission,
    ComplaintWithdrawn,
    CustomerMessageReceived,
    ExternalAgentResponded,
)
from redress_events.catalogue.routing import ComplaintAssigned, ComplaintPrioritized

__all__ = [
    "ComplaintAssigned",
    "ComplaintPrioritized",
    "ComplaintReceived",
    "ComplaintSubmission",
    "ComplaintWithdrawn",
    "CustomerMessageReceived",
    "ExternalAgentResponded",
]
