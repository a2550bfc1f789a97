"""The manifest names of every model file the code loads, in one place (each is an entry of model_manifest.json).

A name is `<folder key>/<path in that folder>`; model_files.resolve() finds it in ComfyUI's model folders.
Two files of the same name in different folders are different entries (Face-Adapter ships its own BFM and
d3dfr regressor; PIE uses Deep3DFaceRecon's), so each constant says whose file it is.
"""

from __future__ import annotations

# faces
MEDIAPIPE_LANDMARKER = "mediapipe/face_landmarker.task"
SCRFD = "face_adapter/third_party/models/antelopev2/scrfd_10g_bnkps.onnx"

# the open 3DMM (ICT-FaceKit, shipped with the pack)
ICT_LANDMARK_MODEL = "face_3dmm/ict_facekit/landmarks_model.npz"  # 68 landmarks: fitting, projection
ICT_FACE_MODEL = "face_3dmm/ict_facekit/face_model.npz"  # the whole mesh: PIE's image formation

# Face-Adapter's release (Hugging Face FaceAdapter/FaceAdapter)
FA_ID2TOKEN = "face_adapter/net_id2token.pth"
FA_IMAGE2TOKEN = "face_adapter/net_image2token.pth"
FA_CONTROLNET_CONFIG = "face_adapter/controlnet/config.json"
FA_CONTROLNET = "face_adapter/controlnet/diffusion_pytorch_model.safetensors"
FA_VISION_CONFIG = "face_adapter/vision_encoder/config.json"
FA_VISION = "face_adapter/vision_encoder/model.safetensors"
FA_UNET_CONFIG = "face_adapter/pretrained_unet/config.json"
FA_UNET = "face_adapter/pretrained_unet/diffusion_pytorch_model.safetensors"
FA_IRESNET = "face_adapter/third_party/insightface_glint360k.pth"
FA_SEG_UNET = "face_adapter/net_seg_res18.pth"
FA_D3DFR = "face_adapter/third_party/d3dfr_res50_nofc.pth"
FA_BFM = "face_adapter/third_party/BFM_model_front.mat"
FA_BISENET = "face_adapter/third_party/79999_iter.pth"

# Stable Diffusion 1.5, loaded by ComfyUI's own loaders
SD15_CHECKPOINT = "checkpoints/v1-5-pruned-emaonly.safetensors"
SD_VAE_FT_MSE = "vae/vae-ft-mse-840000-ema-pruned.safetensors"

# Diffusion Video Autoencoders
DVA_CHECKPOINT = "diffusion_video_autoencoder/epoch=51-step=1000000.ckpt"  # a file name in the dva folder
DVA_CLASSIFIER = "dva/diffusion_video_autoencoder_cls/last.ckpt"
DVA_IDNET = "dva/pretrained_models/model_ir_se50.pth"  # IR-SE50 (also PIE's recognition network)
DVA_LNDNET = "dva/pretrained_models/mobilenet_224_model_best_gdconv_external.pth.tar"  # also PIE's landmarks
DVA_BGNET = "dva/pretrained_models/79999_iter.pth"
DVA_CLIP = "dva/clip/ViT-B-16.pt"

# PIE
PIE_VGG16 = "stylegan2/vgg16-397923af.pth"
PIE_VGG_FACE = "stylegan2/vgg_face_dag.pth"  # VGG-Face (PIE's recognition network; the pack's default is IR-SE50)
PIE_D3DFR = "face_3dmm/deep3dfacerecon/epoch_20.pth"
PIE_BFM = "face_3dmm/BFM/BFM_model_front.mat"
PIE_STANDARD_LANDMARKS = "face_3dmm/BFM/similarity_Lm3D_all.mat"

# Networks that only score results (pipelines/metrics.py): the lpips package's and pytorch-fid's own files
METRIC_LPIPS_ALEX = "metrics/lpips/weights/v0.1/alex.pth"
METRIC_ALEXNET = "metrics/torchvision/alexnet-owt-7be5be79.pth"
METRIC_FID_INCEPTION = "metrics/pytorch_fid/pt_inception-2015-12-05-6726825d.pth"
METRIC_DLIB_DESCRIPTOR = "metrics/dlib/dlib_face_recognition_resnet_model_v1.dat"
METRIC_DLIB_PREDICTOR5 = "metrics/dlib/shape_predictor_5_face_landmarks.dat"

# The authors' own networks: with these present the `auto` choices run the paper's path (SCRFD, d3dfr + BFM,
# seg UNet / BiSeNet masks, the release UNet); without them the open path runs.
FACE_ADAPTER_PAPER_PATH_FILES = (SCRFD, FA_D3DFR, FA_BFM, FA_SEG_UNET, FA_BISENET, FA_UNET_CONFIG, FA_UNET)

# What the Face-Adapter demo's reenactment and swap workflows load with the real weights.
FACE_ADAPTER_DEMO_FILES = (
    FA_ID2TOKEN,
    FA_IMAGE2TOKEN,
    FA_CONTROLNET_CONFIG,
    FA_CONTROLNET,
    FA_VISION_CONFIG,
    FA_VISION,
    FA_IRESNET,
    SD15_CHECKPOINT,
    SD_VAE_FT_MSE,
)
