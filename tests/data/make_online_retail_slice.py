"""Cut tests/data/online_retail_slice.csv from the shipped UCI Online Retail file.

Run once from the repository root (`python tests/data/make_online_retail_slice.py`); the
tests read only the CSV it writes. Seeded: the same slice every time. It keeps January to
April 2011 for six countries, with cancellations (negative quantities), lines without a
CustomerID and lines with a zero price, written the way the original UCI export writes
dates (month/day/year hour:minute) so the loader's date-format inference is exercised.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SOURCE = Path("data/online_retail.parquet")
TARGET = Path(__file__).with_name("online_retail_slice.csv")
LINES = {"United Kingdom": 1100, "Germany": 250, "France": 250, "EIRE": 200,
         "Spain": 100, "Belgium": 100}
CANCELLED, FREE = 0.04, 0.01  # share of each country's lines drawn from those pools


def cut(retail: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """Seeded stratified sample: per country, ordinary, cancelled and zero-price lines."""
    window = retail[retail["InvoiceDate"].between("2011-01-01", "2011-04-30 23:59")]
    pools = {
        "cancelled": window["Quantity"] < 0,
        "free": window["UnitPrice"] <= 0,
    }
    parts = []
    for country, n in LINES.items():
        here = window["Country"] == country
        for name, share in (("cancelled", CANCELLED), ("free", FREE)):
            pool = window[here & pools[name]]
            parts.append(pool.sample(min(len(pool), max(1, round(n * share))), random_state=seed))
        ordinary = window[here & ~pools["cancelled"] & ~pools["free"]]
        parts.append(ordinary.sample(n - sum(len(p) for p in parts[-2:]), random_state=seed))
    return pd.concat(parts).sort_values(["InvoiceDate", "InvoiceNo"], kind="stable")


def write(slice_: pd.DataFrame, path: Path) -> None:
    out = slice_.assign(
        CustomerID=slice_["CustomerID"].astype("Int64"),
        InvoiceDate=slice_["InvoiceDate"].map(lambda t: f"{t.month}/{t.day}/{t.year} "
                                                        f"{t.hour}:{t.minute:02d}"),
    )
    out.to_csv(path, index=False)


if __name__ == "__main__":
    sample = cut(pd.read_parquet(SOURCE))
    write(sample, TARGET)
    print(f"wrote {len(sample)} lines to {TARGET}")
