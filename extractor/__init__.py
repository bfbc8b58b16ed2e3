"""Feature extraction: perceptual hashes and neural models into a resumable HDF5 store.

    from extractor import create_extractor, extract_dataset, load_features
    ext = create_extractor("dhash")                      # or "resnet50", weights=None / "DEFAULT" / path
    path = extract_dataset(ext, "demo_original")         # Features/demo_original/dhash.h5
    feats = load_features("demo_original", "dhash")      # .ids, .features (packed bits for hashes)

Names are imported on first use (helpers/lazy.py): ``import extractor`` and the store alone
(``extractor.store``: h5py + numpy) never load torch.
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
from helpers.lazy import lazy_attributes

__all__, __getattr__, __dir__ = lazy_attributes(__name__, {
    "extractor.base": "Extractor",
    "extractor.extraction_config": "ExtractionConfig",
    "extractor.hashes": "crop_resistant_distance",
    "extractor.local_store": "LocalFeatures extract_local",
    "extractor.neural": "NeuralExtractor PreprocessCfg",
    "extractor.pipeline": "extract_dataset shard_bounds",
    "extractor.registry": "ENTRIES create_extractor list_extractors register_extractor unregister_extractor",
    "extractor.store": "Features FeatureWriter StoreError iter_chunks load_features store_files store_info "
                       "store_path write_features",
    "extractor.texts": "extract_texts",
})
