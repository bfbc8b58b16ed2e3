"""Clustering of image features at 50,000 images and beyond, and how clean the clusters are.

- `Agglomerative` (single, complete, average, centroid, ward; dense when it fits the memory
  budget, else a faiss kNN graph), `GraphDBSCAN`, `GraphHDBSCAN`, `FaissKMeans`;
- `clustering.metrics`: homogeneity, completeness, V-measure, ARI, AMI, BCubed, purity, IoU,
  and the geometric measures of `clustering.geometry`;
- `cluster_experiment` / `dbscan_experiment`: load features + ground truth, cluster, score,
  save assignments, metrics and figures under ``Results/clustering/``.
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)

# isort: split
from clustering.agglomerative import Agglomerative, dense_memory_bytes
from clustering.density import FaissKMeans, GraphDBSCAN, GraphHDBSCAN
from clustering.experiment import DEFAULT_EPS, cluster_experiment, dbscan_experiment
from clustering.groundtruth import ClusteringData, load_clustering_data
from clustering.metrics import clustering_scores
from clustering.spaces import LINKAGES, METRICS

__all__ = [
    "Agglomerative",
    "ClusteringData",
    "DEFAULT_EPS",
    "FaissKMeans",
    "GraphDBSCAN",
    "GraphHDBSCAN",
    "LINKAGES",
    "METRICS",
    "cluster_experiment",
    "clustering_scores",
    "dbscan_experiment",
    "dense_memory_bytes",
    "load_clustering_data",
]
