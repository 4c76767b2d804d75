"""The bench's sizes (full and `--quick`) and the issue's goals printed beside the figures (never asserted)."""

FULL = {"producer_messages": 100_000, "producer_runs": 3, "producer_keys": 10_000, "value_bytes": 400,
        "upsert_rows": 50_000, "upsert_runs": 3, "upsert_keys": 10_000, "upsert_batch": 1_000,
        "single_concurrency": 32, "batch_concurrency": 8, "batch_size": 100, "http_customers": 10_000,
        "warmup_s": 2.0, "single_duration_s": 12.0, "batch_duration_s": 12.0,
        "backlog_events": 20_000, "backlog_customers": 5_000, "backlog_timeout_s": 240.0,
        "latency_rate": 50.0, "latency_duration_s": 20.0, "probe_every": 5, "all_polled_duration_s": 10.0,
        "poll_s": 0.010, "latency_timeout_s": 30.0, "latency_reads": "api",  # or "consumer": the consuming process
        "capacity_fraction": 0.7, "open_loop_warmup_s": 1.0, "open_loop_duration_s": 10.0,
        "open_loop_single_connections": 64, "open_loop_batch_connections": 32,
        "profile_rate_hz": 200, "profile_duration_s": 8.0, "connect_stagger_s": 0.02,
        "knee_rates": [100, 250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000], "knee_step_s": 60.0,
        "knee_flush_s": 0.005, "knee_gap_s": 2.0, "knee_connections": 64, "knee_lag_every_s": 5.0,
        "knee_drain_s": 120.0, "knee_lowest_rate": 20, "knee_goal_rate": 5000,
        "knee_idle_s": 20.0}
QUICK = FULL | {"producer_messages": 30_000, "upsert_rows": 20_000, "warmup_s": 1.0,
                "single_duration_s": 3.0, "batch_duration_s": 3.0, "backlog_events": 5_000,
                "backlog_customers": 1_250, "backlog_timeout_s": 120.0, "latency_duration_s": 6.0,
                "all_polled_duration_s": 0.0, "open_loop_warmup_s": 0.5, "open_loop_duration_s": 4.0,
                "profile_duration_s": 4.0, "knee_rates": [100, 250, 500, 1000, 2000, 4000, 8000], "knee_step_s": 15.0,
                "knee_idle_s": 8.0, "knee_lag_every_s": 3.0, "knee_drain_s": 45.0}
GOALS = {"ingest_batch": ">= 0.5 x producer", "ingest_batch_2w": ">= 0.8 x producer",
         "ingest_single": ">= 0.6 x null endpoint", "ack_latency": "p99 <= 50 ms"}
