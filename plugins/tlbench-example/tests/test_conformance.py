"""The plugin's own conformance test: tlbench's kit runs every contract check on each record."""
from tlbench.testing import Check, parametrize_plugin_checks

import tlbench_example

RECORDS = tlbench_example.tlbench_datasets() + tlbench_example.tlbench_strategies()


@parametrize_plugin_checks([(record, {"per_class": 10}) if record.name == "textures" else record
                            for record in RECORDS])
def test_conforms(record: object, check: Check) -> None:
    check(record)
