"""The baseline the gate is measured against: what a Django developer would build."""
