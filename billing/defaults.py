"""The meters every deployment starts with; the operator may add more or relabel these."""

from decimal import Decimal

# code, name, unit, aggregation, unique_property, display_unit, display_factor
DEFAULT_METERS = [
    ("requests", "API requests", "request", "count", "", "", Decimal(1)),
    ("records_processed", "Records processed", "record", "sum", "", "", Decimal(1)),
    ("storage_gb", "Storage", "GB", "max", "", "", Decimal(1)),
    ("active_users", "Active users", "user", "unique_count", "user_id", "", Decimal(1)),
    (
        "gpu_seconds",
        "GPU time",
        "GPU-second",
        "sum",
        "",
        "AI minutes",
        (Decimal(1) / Decimal(60)).quantize(Decimal("1e-12")),
    ),
]


def ensure_default_meters(meter_model) -> None:
    """Creates any default meter that is missing (takes the model: migrations pass theirs)."""
    for code, name, unit, aggregation, unique_property, display_unit, factor in DEFAULT_METERS:
        meter_model.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "unit": unit,
                "aggregation": aggregation,
                "unique_property": unique_property,
                "display_unit": display_unit,
                "display_factor": factor,
            },
        )
