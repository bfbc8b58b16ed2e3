"""Clustering of image features at 50,000 images and beyond, and how clean the clusters are.

- `Agglomerative` (single, complete, average, centroid, ward; dense when it fits the memory
  budget, else a faiss kNN graph), `GraphDBSCAN`, `GraphHDBSCAN`, `FaissKMeans`;
- `clustering.metrics`: homogeneity, completeness, V-measure, ARI, AMI, BCubed, purity, IoU,
  and the geometric measures of `clustering.geometry`;
- `cluster_experiment` / `dbscan_experiment`: load features + ground truth, cluster, score,
  save assignments, metrics and figures under ``Results/clustering/``.

Names are imported on first use (helpers/lazy.py).
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
from helpers.lazy import lazy_attributes

__all__, __getattr__, __dir__ = lazy_attributes(__name__, {
    "clustering.agglomerative": "Agglomerative dense_memory_bytes",
    "clustering.density": "FaissKMeans GraphDBSCAN GraphHDBSCAN",
    "clustering.config": "AgglomerativeConfig ClusteringSource DBSCANConfig RunOutput",
    "clustering.experiment": "cluster_experiment dbscan_experiment",
    "clustering.groundtruth": "ClusteringData load_clustering_data",
    "clustering.metrics": "clustering_scores",
    "clustering.spaces": "DEFAULT_EPS LINKAGES METRICS",
})
