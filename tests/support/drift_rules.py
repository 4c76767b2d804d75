"""Rule sets the drift tests put in force."""

from __future__ import annotations

from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet

WATCHFUL = RuleSet.model_validate({**DEFAULT_RULES.as_document(), "version": "p-alive-test",
                                   "drift": {**DEFAULT_RULES.as_document()["drift"], "at_risk_below_p_alive": 0.6}})
