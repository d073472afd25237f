"""Small synthetic order facts for the risk tests: legitimate customers with their own devices,
and fraud rings re-using devices and cards, shipping abroad, with big baskets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.risk.features import FACT_COLUMNS


def make_facts(n: int = 3000, days: int = 40, fraud_rate: float = 0.06, seed: int = 1):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-01", tz="UTC")
    t = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    fraud = rng.random(n) < fraud_rate
    cust = rng.integers(0, n // 6, n)
    dev = cust.copy()
    ring_dev = rng.integers(0, 5, n)
    dev = np.where(fraud, 100000 + ring_dev, dev)
    card = np.where(fraud, 200000 + rng.integers(0, 8, n), cust)
    cust = np.where(fraud, 300000 + rng.integers(0, n // 4, n), cust)
    amount = np.round(np.where(fraud, rng.lognormal(6.0, 0.5, n), rng.lognormal(4.2, 0.7, n)), 2)
    home = np.where(rng.random(n) < 0.5, "DE", "FR")
    ship = np.where(fraud & (rng.random(n) < 0.7), "NL", home)
    ip_country = np.where(fraud & (rng.random(n) < 0.6), "RU", home)
    frame = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:08d}" for i in range(n)],
            "ordered_at": t,
            "customer_key": [f"C{c}" for c in cust],
            "device_key": [f"D{d}" for d in dev],
            "ip_key": [f"I{d % 997}" for d in dev],
            "ip_network_key": [f"N{d % 97}" for d in dev],
            "card_key": [f"K{c}" for c in card],
            "ship_address_key": [
                f"A{c % 700}" for c in np.where(fraud, rng.integers(0, 30, n), cust)
            ],
            "channel": rng.choice(["web", "app"], n),
            "payment_method": np.where(fraud, "card", rng.choice(["card", "paypal"], n)),
            "promise_type": "standard",
            "acquisition_source": None,
            "browser_family": rng.choice(["chrome", "safari"], n),
            "device_class": "desktop",
            "has_promo_code": rng.random(n) < 0.1,
            "billing_differs_from_shipping": ship != home,
            "order_total": amount,
            "shipping_fee": 4.99,
            "ip_country_code": ip_country,
            "shipping_country_code": ship,
            "billing_country_code": home,
            "home_country_code": home,
            "ip_lat": np.where(ip_country == "RU", 55.7, 50.0),
            "ip_lon": np.where(ip_country == "RU", 37.6, 8.0),
            "shipping_lat": np.where(ship == "NL", 52.4, 50.0),
            "shipping_lon": np.where(ship == "NL", 4.9, 8.0),
            "home_lat": 50.0,
            "home_lon": 8.0,
            "signed_up_at": t
            - pd.to_timedelta(
                np.where(fraud, rng.uniform(0, 2, n), rng.uniform(30, 900, n)), unit="D"
            ),
            "customer_tier": "standard",
            "customer_age_years": None,
            "line_count": rng.integers(1, 4, n),
            "unit_count": rng.integers(1, 6, n),
            "max_unit_price": amount / 2,
            "category_count": 1,
            "high_risk_value_share": np.where(fraud, 0.9, rng.uniform(0, 0.4, n)),
            "medium_risk_value_share": 0.1,
            "discount_share": 0.0,
            "local_hour": rng.integers(0, 24, n),
            "local_dow": rng.integers(1, 8, n),
        }
    )
    frame["partition_key"] = frame["ordered_at"].dt.strftime("%Y-%m-%d")
    verdicts = pd.DataFrame(
        {
            "order_id": frame["order_id"][fraud].to_numpy(),
            "is_fraud": True,
            "fraud_known_at": (
                frame["ordered_at"][fraud]
                + pd.to_timedelta(rng.uniform(3, 30, fraud.sum()), unit="D")
            ).to_numpy(),
        }
    )
    assert set(FACT_COLUMNS) <= set(frame.columns)
    return frame, verdicts, fraud
