"""Engine plans of PASER selection beyond the one-machine path in `sift.selection.api`: `spark` (executors embed,
score and write; the driver clusters and selects with the shared code of `api.decide`)."""
