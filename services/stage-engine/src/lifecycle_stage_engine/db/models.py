"""Tables of the stage-engine database."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

profiles = Table(
    "profiles",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    # userId once known, else the first anonymousId.
    Column("customer_id", Text, nullable=False, unique=True),
    Column("user_id", Text, unique=True),
    Column("stage", Text),
    Column("stage_since", DateTime(timezone=True)),
    Column("previous_stage", Text),
    Column("facts", JSONB, nullable=False, server_default="{}"),  # the timeline state (facts, as_of)
    Column("traits", JSONB, nullable=False, server_default="{}"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("acquisition", JSONB, nullable=False, server_default="{}"),  # channel, source of the first touch
    Column("acquired_at", DateTime(timezone=True)),
    Column("merges", Integer, nullable=False, server_default="0"),
    # When time alone moves the customer next (at-risk, lapsed): the sweeper's work list.
    Column("due_at", DateTime(timezone=True)),
    Column("merged_into", UUID(as_uuid=False)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("profiles_due", "due_at", postgresql_where=text("due_at IS NOT NULL AND merged_into IS NULL")),
    Index("profiles_stage_id", "stage", "id", postgresql_where=text("merged_into IS NULL")),
)

identities = Table(
    "identities",
    metadata,
    Column("id_type", Text, primary_key=True),  # 'user' | 'anonymous' | a trait name ('email')
    Column("id_value", Text, primary_key=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False, index=True),
)

touchpoints = Table(
    "touchpoints",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("historical", Boolean, nullable=False, server_default="false"),
    # Its identity was established (TouchpointData.verified): what it causes may move points.
    Column("verified", Boolean, nullable=False, server_default="false"),
    Index("touchpoints_profile_time", "profile_id", "event_time"),
)

# The stored stage history: what the profile API and analytics read. A recomputed history (a late
# event, a merge, a replay) supersedes the rows it no longer contains and adds the ones it gained.
transitions = Table(
    "transitions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # derived from cause and move (timeline.transition_id)
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("from_stage", Text),
    Column("to_stage", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule_version", Text, nullable=False),
    Column("cause_event_ids", ARRAY(Text), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("historical", Boolean, nullable=False, server_default="false"),
    Column("verified", Boolean, nullable=False, server_default="false"),  # its cause was (Transition.verified)
    Column("superseded_at", DateTime(timezone=True)),
    Index("transitions_profile_seq", "profile_id", "seq"),
    Index("transitions_live_time", "event_time", postgresql_where=text("superseded_at IS NULL")),
)

# Rule sets an operator put in place (PUT /v1/admin/rules); the latest activated one is in force.
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", Text, primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Replays and dry runs (POST /v1/admin/replays): background jobs with progress.
replay_jobs = Table(
    "replay_jobs",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("dry_run", Boolean, nullable=False),
    Column("scope", JSONB, nullable=False),  # {"customer_id": ...} | {"stage": ...} | {}
    Column("rules", JSONB, nullable=False),  # the rule set replayed
    Column("status", Text, nullable=False),  # queued | running | done | failed
    Column("total", Integer, nullable=False, server_default="0"),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("cursor", Text),  # the last profile id done (a restarted job goes on from there)
    Column("result", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
)

# Analytics (workers/analytics.py): each refresh scores every buyer (RFM, CLV, churn) and stores the
# result per profile, the segment sizes and the movement between segments since the previous
# refresh; each model fit (scheduled or asked for) is a row with its parameters.
customer_scores = Table(
    "customer_scores",
    metadata,
    Column("profile_id", UUID(as_uuid=False), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Column("document", JSONB, nullable=False),  # analytics.scoring.CustomerScore as JSON
    Column("segment", Text, nullable=False),
    Column("total_clv", Numeric, nullable=False),
    Index("customer_scores_segment", "segment", "profile_id"),
    Index("customer_scores_total_clv", "total_clv"),
)

rfm_snapshots = Table(
    "rfm_snapshots",
    metadata,
    Column("scored_at", DateTime(timezone=True), primary_key=True),
    Column("sizes", JSONB, nullable=False),  # segment -> customers
    Column("movement", JSONB, nullable=False),  # [[from segment | null, to segment | null, customers]]
)

clv_fits = Table(
    "clv_fits",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("kind", Text, nullable=False),  # scheduled | requested
    Column("calibration_end", DateTime(timezone=True)),  # null: the moment the fit runs
    Column("unit", Text, nullable=False),  # D | W
    Column("status", Text, nullable=False),  # queued | running | done | failed
    Column("result", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),  # when an instance took it
    Column("finished_at", DateTime(timezone=True)),
    Index("clv_fits_queued", "created_at", postgresql_where=text("status = 'queued'")),
)
