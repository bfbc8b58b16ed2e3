"""The names the fine-tuning scripts offer as choices, without importing torch (their --help stays fast).

Each is checked where it is used: `finetuning.training` (optimizers, recipes), `finetuning.adaptation`
(adaptation modules), `finetuning.copy_policy` (augmentation steps; a test keeps the two lists equal).
"""

OPTIMIZERS = ("lars", "adam", "adamw", "sgd")
RECIPES = ("simclr", "sscd")
ADAPTATION_MODELS = ("linear", "linear-relu", "original")
#: SSCD copy-policy steps, in policy order (`finetuning.copy_policy.sscd_steps`).
AUGMENTATION_STEPS = ("hflip", "rotate90", "overlay_text", "overlay_emoji", "paste_onto", "paste_under", "padding",
                      "perspective", "random_resized_crop", "color_jitter", "greyscale", "blur", "jpeg")
