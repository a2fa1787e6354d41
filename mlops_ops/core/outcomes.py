"""Joined outcomes: the contract between the feedback join and its readers.

An **outcome** (the label: did the customer churn) arrives after the prediction it answers. The
feedback join (``monitoring.feedback``) matches each outcome to the prediction it belongs to (in the
online service's prediction log or in a batch-scoring output) and stores the matched pairs as
**joined outcomes**: one row per (prediction, model that scored it). A shadow release logs two rows
per request row (champion and shadow, one ``prediction_id``), so one outcome joins to both: the
pairs a paired test needs.

=================  ==========================  ==================================================
column             Arrow type                  meaning
=================  ==========================  ==================================================
``prediction_id``  string                      the prediction log's id; batch scoring:
                                               ``batch:<interval key>:<row number>``
``source``         string                      ``online`` (prediction log) or ``batch``
``model_version``  string                      the registry version that scored the row
``arm``            string                      ``champion``, ``challenger``, ``shadow`` or ``batch``
``entity_key``     string, nullable            the entity key's value as text, when joined by entity
``predicted_at``   timestamp[us, tz=UTC]       when the prediction was made (request time; batch:
                                               its data interval's start)
``outcome_at``     timestamp[us, tz=UTC]       when the outcome happened (its event time)
``joined_at``      timestamp[us, tz=UTC]       the feedback run that joined it (arrival)
``prediction``     string, nullable            the predicted label or value, as text
``probability``    float64, nullable           probability of the positive class (binary)
``label``          string                      the outcome, as text in the same form as
                                               ``prediction`` (``"1"``, ``"True"``, ``"12.5"``)
=================  ==========================  ==================================================
"""

from __future__ import annotations

import pyarrow as pa

JOINED_OUTCOME_SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("entity_key", pa.string()),
        pa.field("predicted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("outcome_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("joined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("prediction", pa.string()),
        pa.field("probability", pa.float64()),
        pa.field("label", pa.string(), nullable=False),
    ]
)
JOINED_COLUMNS = tuple(JOINED_OUTCOME_SCHEMA.names)
SOURCES = ("online", "batch")
