"""Reverse image search over any feature store: a gradio app on top of `extractor` and `fast_search`.

    python search_app.py --method dhash --database demo_original demo_distractors   # or: make app

`imsim.app.collection.Collection` loads the stores, builds (once) or loads their faiss index and embeds
queries exactly as the store's extractor did; `imsim.app.safe_fetch` fetches query URLs and checks
uploads; `imsim.app.ui` lays out the gradio page. Nothing below `app` imports it.
"""

from imsim.app.collection import Collection, Hit, threshold_from_results
from imsim.app.safe_fetch import FetchError, check_upload, fetch_image

__all__ = ["Collection", "FetchError", "Hit", "check_upload", "fetch_image", "threshold_from_results"]
