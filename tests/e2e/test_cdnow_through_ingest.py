"""The published CLV estimates, reproduced from the CDNOW transactions imported through ingest.

The 6,919 purchases of the CDNOW sample (2,357 customers, 1997-01 to 1998-06; `tests/data`, MIT, from
lifetimes) go through the import CLI as historical "Order Completed" events, through Kafka into the
stage engine. Then the cohort matrix the API answers equals the one computed from the raw file, and a
fit asked for through the API with the calibration through 1997-09-30 in weeks reproduces Fader, Hardie
& Lee's BG/NBD estimates (r 0.243, α 4.414, a 0.793, b 2.426) and Fader & Hardie's Gamma-Gamma
estimates (p 6.25, q 3.74, γ 15.44) to three significant figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lifecycle_shared.testing import eventually
from lifecycle_stage_engine.analytics.cohorts import retention

from tests.support.pipeline import bearer

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow_sample.txt"


def purchases() -> list[tuple[str, datetime, float]]:
    rows = []
    for line in CDNOW.read_text().splitlines():
        customer, _, day, _, amount = line.split()
        rows.append((f"cdnow-{customer}", datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC),
                     float(amount)))
    return rows


def significant(value: float, figures: int = 3) -> str:
    return f"{value:.{figures}g}"


async def test_cdnow_imported_through_ingest_reproduces_the_published_fits(pipeline, tmp_path):
    rows = purchases()
    lines = [{"type": "track", "event": "Order Completed", "userId": customer, "timestamp": at.isoformat(),
              "messageId": f"cdnow-{n}", "properties": {"order_id": f"cdnow-order-{n}", "revenue": amount}}
             for n, (customer, at, amount) in enumerate(rows)]
    await pipeline.import_history(lines, tmp_path)

    expected = {(c.month, c.size, tuple(sorted(c.buyers_by_offset.items())))
                for c in retention([(customer, at) for customer, at, _ in rows])}
    engine = pipeline.url("stage-engine")
    async with pipeline.client() as client:
        async def all_orders_in():
            found = (await client.get(f"{engine}/v1/analytics/cohorts", headers=bearer(pipeline.api_token),
                                      params={"start": "1997-01-01T00:00:00Z", "end": "1997-04-01T00:00:00Z"})).json()
            got = {(c["month"], c["size"], tuple(sorted((int(k), v) for k, v in c["buyers_by_offset"].items())))
                   for c in found}
            return got if got == expected else None

        # Every purchase is in: the cohort matrix (first purchases in 1997-Q1) equals the raw file's.
        await eventually(all_orders_in, timeout_s=240, interval_s=2, what="the CDNOW cohorts to match the file")

        asked = await client.post(f"{engine}/v1/admin/analytics/fits", headers=bearer(pipeline.admin_token),
                                  json={"calibration_end": "1997-09-30", "unit": "W"})
        assert asked.status_code == 202, asked.text

        async def finished():
            fit = (await client.get(f"{engine}/v1/analytics/fits/{asked.json()['id']}",
                                    headers=bearer(pipeline.api_token))).json()
            return fit if fit["status"] in ("done", "failed") else None

        fit = await eventually(finished, timeout_s=120, what="the CDNOW fit")
    assert fit["status"] == "done", fit
    result = fit["result"]
    assert result["customers"] == 2357 and result["repeat_buyers"] == 946
    bgnbd, gamma_gamma = result["bgnbd"], result["gamma_gamma"]
    assert {k: significant(v) for k, v in bgnbd["params"].items()} == {
        "r": "0.243", "alpha": "4.41", "a": "0.793", "b": "2.43"}
    assert bgnbd["n"] == 2357 and round(bgnbd["log_likelihood"], 1) == -9582.4
    assert {k: significant(v) for k, v in gamma_gamma["params"].items()} == {"p": "6.25", "q": "3.74", "gamma": "15.4"}
    assert gamma_gamma["n"] == 946
    assert all(error is not None and error > 0 for error in bgnbd["standard_errors"].values())
