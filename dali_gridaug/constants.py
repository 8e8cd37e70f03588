"""Shared constants: ImageNet statistics (0–255 pixel units), crop defaults, decoder hints."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD: tuple[float, float, float] = (0.229 * 255, 0.224 * 255, 0.225 * 255)

#: RandomResizedCrop defaults of the torchvision ImageNet recipe.
RRC_SCALE: tuple[float, float] = (0.08, 1.0)
RRC_RATIO: tuple[float, float] = (3 / 4, 4 / 3)
#: Attempts of the random-resized crop (torchvision's ``RandomResizedCrop.get_params``).
RRC_ATTEMPTS: int = 10
#: Validation resizes the shorter side to ``image_size / CROP_PCT`` (224 → 256).
CROP_PCT: float = 0.875

#: File extensions an ImageFolder accepts (torchvision's ``IMG_EXTENSIONS``).
IMG_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

#: nvJPEG preallocation hints of DALI's ResNet-50 example (largest ImageNet image).
PREALLOCATE_WIDTH_HINT: int = 5980
PREALLOCATE_HEIGHT_HINT: int = 6430
#: Share of baseline JPEGs sent to the A100/H100 hardware decoder.
HW_DECODER_LOAD: float = 0.65

#: DALI prefetch queue depth of the loader's pipelines (batches prepared ahead).
PREFETCH: int = 3
