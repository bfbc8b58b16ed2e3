"""SimCLR v2: ResNets with/without selective kernels and the contrastive head (`resnet`), strict by-name
TF conversion (`tf_checkpoint`, `convert`), `download.py`. TensorFlow is only imported to convert."""
