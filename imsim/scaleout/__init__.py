"""Scale-out: feature extraction on a Ray cluster (or a local Ray), on top of `extractor`.

    from imsim.scaleout import extract_dataset_ray
    paths = extract_dataset_ray("dhash", "Flickr500K", shards=16)            # local Ray
    paths = extract_dataset_ray("resnet50", "Flickr500K", address="head:6379")

Ray is imported only when a function here runs, so nothing else needs it installed.
"""

from imsim.scaleout.ray_extract import RayClusterError, extract_dataset_ray

__all__ = ["RayClusterError", "extract_dataset_ray"]
