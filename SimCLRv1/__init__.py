"""SimCLR v1: ResNet-50 1x/2x/4x (`resnet_wider`), TF checkpoint conversion (`convert`), `download.py`."""
