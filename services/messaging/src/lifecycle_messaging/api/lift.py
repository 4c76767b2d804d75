"""`GET /v1/campaigns/lift` and `GET /v1/campaigns/{campaign}/lift`: what each campaign's holdout shows
(docs/messaging.md "Campaign lift") and what became of its messages.

Behind the API token (`LIFECYCLE_API_TOKENS`), like the other read routes: aggregates only, no personal
data, but a shop's conversion and revenue figures are not public. The statistics are `domain.lift`'s; the
figures `db.lift`'s, as of the service's clock, with the attribution window `attribution_days` and the
expected holdout share the campaign's own (its current version's), else the shop's `holdout_share` - the
sample-ratio check's reference. A campaign whose share was changed mid-test mixes two ratios, and the check
says so: start a new campaign id for a new test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.http import Engine, errors
from pydantic import BaseModel, Field

from lifecycle_messaging.api.deps import Campaigns, MessagingConfig, Now
from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.db import lift as figures
from lifecycle_messaging.domain import lift as stats

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], dependencies=[ApiAccess], responses=errors(401, 403))

CampaignId = Annotated[str, Path(min_length=1, max_length=200, pattern="^[^\x00]+$",
                                 description="The campaign id as messages and holdout assignments record it.")]


class GroupOut(BaseModel):
    eligible: int = Field(description="People assigned to this group (as assigned: intention to treat).")
    sent: int = Field(description="Of them, those sent the campaign's message.")
    converted: int = Field(description="Those with an order within the attribution window after the (would-be) send.")
    conversion: float | None = Field(description="converted / eligible; null with nobody eligible.")
    revenue: float = Field(description="Revenue in the window, net of refunds, summed over the group.")
    revenue_per_eligible: float | None


class IntervalOut(BaseModel):
    low: float
    high: float


class DifferenceOut(BaseModel):
    estimate: float = Field(description="treatment - holdout")
    interval: IntervalOut
    p_value: float
    significant: bool


class SampleRatioOut(BaseModel):
    expected_share: float = Field(description="The configured holdout share.")
    observed_share: float | None
    p_value: float
    alarm: bool = Field(description="p < 0.001: the split is broken and the lift is not to be trusted.")


class OutcomesOut(BaseModel):
    sent: int
    held: int = Field(description="Queued, held past now by quiet hours or frequency caps.")
    queued: int
    awaiting_contact: int
    failed: int
    superseded: int
    suppressed: dict[str, int] = Field(description="Suppressed messages by reason (`holdout` among them).")


class CampaignLiftOut(BaseModel):
    campaign: str
    status: str = Field(description="measured | not_enough_data | sample_ratio_mismatch")
    reasons: list[str] = Field(description="Why a difference is missing (not enough data), if it is.")
    confidence: float
    attribution_days: float
    holdout: GroupOut
    treatment: GroupOut
    conversion_difference: DifferenceOut | None
    revenue_difference: DifferenceOut | None = Field(description="Revenue per eligible person, Welch.")
    sample_ratio: SampleRatioOut
    minimum_detectable_effect: float | None = Field(
        description="The smallest absolute conversion increase detectable (80% power) at the audience so far.")
    messages: OutcomesOut


def _difference(diff: stats.Difference | None) -> DifferenceOut | None:
    if diff is None:
        return None
    return DifferenceOut(estimate=diff.estimate, interval=IntervalOut(low=diff.interval.low, high=diff.interval.high),
                         p_value=diff.p_value, significant=diff.significant)


def _outcomes(counts: dict[tuple[str, str | None], int]) -> OutcomesOut:
    plain = {outcome: n for (outcome, reason), n in counts.items() if outcome != "suppressed"}
    return OutcomesOut(sent=plain.get("sent", 0), held=plain.get("held", 0), queued=plain.get("queued", 0),
                       awaiting_contact=plain.get("awaiting_contact", 0), failed=plain.get("failed", 0),
                       superseded=plain.get("superseded", 0),
                       suppressed={reason or "unknown": n for (outcome, reason), n in sorted(
                           counts.items(), key=lambda item: (item[0][0], item[0][1] or "")) if outcome == "suppressed"})


def campaign_lift(campaign: str, groups: dict[str, figures.GroupFigures], counts: dict[tuple[str, str | None], int],
                  *, share: float, attribution_days: float) -> CampaignLiftOut:
    def arm(name: str) -> tuple[stats.Arm, figures.GroupFigures | None]:
        got = groups.get(name)
        if got is None:
            return stats.Arm(0, 0, stats.Revenue(0, 0.0, 0.0)), None
        revenue = stats.Revenue(got.eligible, got.revenue, got.revenue_squares)
        return stats.Arm(got.eligible, got.converters, revenue), got

    def out(pair: tuple[stats.Arm, figures.GroupFigures | None]) -> GroupOut:
        a, got = pair
        revenue = a.revenue.total if a.revenue else 0.0
        return GroupOut(eligible=a.eligible, sent=got.sent if got else 0, converted=a.converters,
                        conversion=a.conversion, revenue=revenue,
                        revenue_per_eligible=revenue / a.eligible if a.eligible else None)

    holdout, treatment = arm("holdout"), arm("treatment")
    result = stats.lift(holdout[0], treatment[0], share)
    ratio = result.sample_ratio
    return CampaignLiftOut(
        campaign=campaign, status=result.status, reasons=list(result.reasons), confidence=result.confidence,
        attribution_days=attribution_days, holdout=out(holdout), treatment=out(treatment),
        conversion_difference=_difference(result.conversion), revenue_difference=_difference(result.revenue),
        sample_ratio=SampleRatioOut(expected_share=ratio.expected_share, observed_share=ratio.observed_share,
                                    p_value=ratio.p_value, alarm=ratio.mismatch),
        minimum_detectable_effect=result.minimum_detectable_effect, messages=_outcomes(counts))


def _share(book: CampaignBook, campaign: str, default: float) -> float:
    found = book.get(campaign)
    return default if found is None else found.share(default)


async def _lifts(engine: Engine, settings: MessagingConfig, now: Now, book: CampaignBook,
                 campaign: str | None) -> list[CampaignLiftOut]:
    window = timedelta(days=settings.attribution_days)
    async with engine.connect() as conn:
        rows = await figures.group_figures(conn, now=now, window=window, campaign=campaign)
        counts = await figures.outcomes(conn, now=now, campaign=campaign)
    by_campaign: dict[str, dict[str, figures.GroupFigures]] = {name: {} for name in counts}
    for row in rows:
        by_campaign.setdefault(row.campaign, {})[row.group] = row
    return [campaign_lift(name, groups, counts.get(name, {}), share=_share(book, name, settings.holdout_share),
                          attribution_days=settings.attribution_days)
            for name, groups in sorted(by_campaign.items())]


@router.get("/lift", response_model=list[CampaignLiftOut], summary="Every campaign's lift and message outcomes")
async def all_lifts(engine: Engine, settings: MessagingConfig, now: Now, book: Campaigns) -> list[CampaignLiftOut]:
    return await _lifts(engine, settings, now, book, None)


@router.get("/{campaign}/lift", response_model=CampaignLiftOut, responses=errors(404),
            summary="One campaign's lift and message outcomes")
async def one_lift(campaign: CampaignId, engine: Engine, settings: MessagingConfig, now: Now,
                   book: Campaigns) -> CampaignLiftOut:
    """404 for a campaign with no message and no holdout assignment."""
    found = await _lifts(engine, settings, now, book, campaign)
    if not found:
        raise HTTPException(404, "no such campaign")
    return found[0]
