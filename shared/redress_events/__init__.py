"""The Redress event contract: one catalogue of immutable, versioned events and their wire format.

Every service imports its events, topic names and CloudEvents codec from here, so that the
contract has one definition and `docs/contract/` can be generated from it.
"""

from redress_events.envelope import Envelope, EventData, derived_event_id, new_event_id
from redress_events.registry import event_class_for, registered_event_types
from redress_events.topics import TOPICS, Topic, TopicName
from redress_events.wire import InvalidEvent, decode_record, encode_envelope

__all__ = [
    "TOPICS",
    "Envelope",
    "EventData",
    "InvalidEvent",
    "Topic",
    "TopicName",
    "decode_record",
    "derived_event_id",
    "encode_envelope",
    "event_class_for",
    "new_event_id",
    "registered_event_types",
]
