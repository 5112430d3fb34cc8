"""Complaint bodies for tests and load: the documented example and generated variants."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

EXAMPLE_PATH = Path(__file__).resolve().parents[2] / "docs" / "examples" / "complaint.json"
EXAMPLE: dict[str, Any] = json.loads(EXAMPLE_PATH.read_text())


def complaint_body(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body.update(overrides)
    return body


def random_complaint(rng: random.Random) -> dict[str, Any]:
    return complaint_body(
        customer={
            "id": f"C-{rng.randrange(1, 50_000)}",
            "tier": rng.choice(["standard", "premium", "vip"]),
        },
        channel=rng.choice(["web", "email", "phone", "social", "chat", "letter"]),
        public=rng.random() < 0.2,
        category=rng.choice(["product_defect", "billing", "delivery", "service"]),
        product=rng.choice(["kettle-2000", "toaster-9", "phone-plan-s", "card-basic"]),
        description=rng.choice(
            [
                "It broke after a week.",
                "I was charged twice.",
                "Parcel never arrived.",
                "Rude agent.",
            ]
        ),
    )
