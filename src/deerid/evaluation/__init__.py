"""Measuring how well embeddings tell individuals apart.

- `retrieval`: closed-set top-1/top-5/mAP under the sighting rule; reading identity folders.
- `openset`: the pipeline's matching rule replayed as a stream into an empty gallery.
- `clustering`: BCubed, false-merge rate and splits of the profiles a stream produced.
- `similarity`: same- vs different-individual pair similarities, ROC AUC, threshold at a false-accept rate.
- `calibration`: choosing REID_THRESHOLD under a false-merge budget.
- `run`: folder or vectors in, `EvaluationResult` out; `report`: PNG plots and Markdown.

See docs/evaluation.md for the protocol and the numbers of the default model.
"""
