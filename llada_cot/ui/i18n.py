"""Page text in English and Korean; the browser's language picks one."""

from __future__ import annotations

import gradio as gr

ENGLISH = {
    "title": "LLaDA-CoT Playground",
    "subtitle": "Watch a masked-diffusion language model solve a problem step by step, one denoising step at a time.",
    "playground": "Playground",
    "prompt": "Problem",
    "examples": "Examples from the test set",
    "generate": "Generate",
    "stop": "Stop",
    "gen_length": "Generation length",
    "gen_length_info": "Positions to generate, in tokens.",
    "steps": "Steps",
    "steps_info": "Denoising steps in total, split over the blocks. Fewer steps commit more tokens per step.",
    "block_length": "Block length",
    "block_length_info": "Positions per semi-autoregressive block; blocks are decoded left to right.",
    "temperature": "Temperature",
    "temperature_info": "0 picks the most likely token; higher values sample.",
    "cfg_scale": "CFG scale",
    "cfg_scale_info": "Classifier-free guidance; above 0 each step costs two forward passes.",
    "remasking": "Remasking rule",
    "remasking_info": "Which predictions each step commits: the most confident ones, or random ones.",
    "seed": "Seed",
    "seed_info": "Fixes the random numbers; the same seed and settings give the same output.",
    "denoising": "Denoising (orange: committed this step, green: earlier, grey: still masked or after the end)",
    "final_text": "Final text",
    "boxed_answer": "Boxed answer",
    "replay": "Replay step",
    "replay_info": "Drag to see the answer after any step (-1 is the start).",
    "commit_plot": "Step at which each position was committed",
}

KOREAN = {
    "title": "LLaDA-CoT 플레이그라운드",
    "subtitle": "마스크 확산 언어 모델이 문제를 단계별로 푸는 과정을 디노이징 스텝마다 지켜보세요.",
    "playground": "플레이그라운드",
    "prompt": "문제",
    "examples": "테스트 세트의 예시",
    "generate": "생성",
    "stop": "중지",
    "gen_length": "생성 길이",
    "gen_length_info": "생성할 위치 수(token 단위).",
    "steps": "스텝 수",
    "steps_info": "블록들에 나누어 쓰는 전체 디노이징 스텝 수. 스텝이 적을수록 한 스텝에 더 많은 token을 확정합니다.",
    "block_length": "블록 길이",
    "block_length_info": "반자기회귀 블록 하나의 위치 수. 블록은 왼쪽부터 차례로 디코딩됩니다.",
    "temperature": "온도(temperature)",
    "temperature_info": "0이면 가장 가능성 높은 token을 고르고, 높을수록 무작위로 샘플링합니다.",
    "cfg_scale": "CFG 스케일",
    "cfg_scale_info": "Classifier-free guidance. 0보다 크면 스텝마다 forward pass가 두 번 필요합니다.",
    "remasking": "리마스킹 규칙",
    "remasking_info": "각 스텝에서 어떤 예측을 확정할지: 신뢰도가 가장 높은 것 또는 무작위.",
    "seed": "시드",
    "seed_info": "난수를 고정합니다. 같은 시드와 설정이면 같은 결과가 나옵니다.",
    "denoising": "디노이징 (주황: 이번 스텝에 확정, 초록: 이전에 확정, 회색: 아직 마스크이거나 끝 이후)",
    "final_text": "최종 텍스트",
    "boxed_answer": "박스 정답",
    "replay": "스텝 다시 보기",
    "replay_info": "끌어서 임의의 스텝 직후 상태를 봅니다(-1은 시작).",
    "commit_plot": "각 위치가 확정된 스텝",
}

I18N = gr.I18n(en=ENGLISH, ko=KOREAN)
