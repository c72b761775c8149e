"""Dynamic partitions: one per registered benchmark and per registered model."""

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition

benchmark_partitions = DynamicPartitionsDefinition(name="benchmark")
model_partitions = DynamicPartitionsDefinition(name="model")
benchmark_model_partitions = MultiPartitionsDefinition(
    {"benchmark": benchmark_partitions, "model": model_partitions}
)


def multi_key(benchmark: str, model: str) -> str:
    """The string key Dagster gives a (benchmark, model) partition."""
    # Dimensions are ordered by name: benchmark, then model.
    return f"{benchmark}|{model}"
