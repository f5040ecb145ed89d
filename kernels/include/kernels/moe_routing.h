// The MoE router of one token, one copy for the CPU reference engine (core/engine/model_runner.cpp moe_block,
// core/engine/mla.cpp deepseek_route) and the GPU engine (kernels/engine/layer_ops.cuh k_route): util/hd.h's
// RAZOR_HD, so nvcc compiles the same function for the device. Host-only otherwise (no cuda_runtime.h).
//
//   scores p:  softmax over all experts (Qwen, OLMoE, Mixtral, DeepSeek-V2), sigmoid per expert (DeepSeek-V3), or
//              the logits themselves (gpt-oss, topk_softmax).
//   choice:    p + bias (DeepSeek-V3's e_score_correction_bias; bias null: p), restricted, when `grouped` and
//              topk_group < n_group, to the topk_group best of n_group equal groups (a group's score: its best
//              choice when group_max, else the sum of its two best).
//   top-k:     the top_k highest choices, ties to the lower expert id, highest first.
//   weights:   p of the chosen experts, divided by (their sum + norm_eps) when norm_topk, times routed_scale
//              (computed in double, as the Hub's float64 scaling factor); topk_softmax: the softmax over the chosen
//              logits (gpt-oss: top-k first, then the softmax of the k).
#pragma once
#include <math.h>
#include <stdint.h>

#include "util/hd.h"

namespace razor::cu {

struct moe_route {
  int32_t n_experts = 0, top_k = 0;
  bool norm_topk = true;
  bool sigmoid = false;           // sigmoid scoring instead of the softmax
  bool topk_softmax = false;      // gpt-oss: choose on the logits, weights = softmax over the chosen k
  bool grouped = false;           // group-limited (DeepSeek): n_group, topk_group, group_max apply
  bool group_max = false;         // a group's score is its best choice (group_limited_greedy), else its two best
  int32_t n_group = 1, topk_group = 1;
  float norm_eps = 0.0f;          // added to the sum of the chosen weights before the division
  double routed_scale = 1.0;
};

// Floats of scratch route_token needs.
RAZOR_HD int32_t route_scratch_floats(const moe_route& r) { return 2 * r.n_experts + r.n_group; }

// logits [n_experts] -> ids / wts [top_k]; scratch: route_scratch_floats(r) floats.
RAZOR_HD void route_token(const moe_route& r, const float* logits, const float* bias, float* scratch, int32_t* ids,
                          float* wts) {
  const int32_t E = r.n_experts, K = r.top_k;
  float* p = scratch;
  float* choice = scratch + E;
  float* gs = scratch + 2 * E;
  if (r.sigmoid) {
    for (int32_t i = 0; i < E; ++i) p[i] = 1.0f / (1.0f + expf(-logits[i]));
  } else if (r.topk_softmax) {
    for (int32_t i = 0; i < E; ++i) p[i] = logits[i];
  } else {
    float mx = logits[0], sum = 0.0f;
    for (int32_t i = 1; i < E; ++i) mx = logits[i] > mx ? logits[i] : mx;
    for (int32_t i = 0; i < E; ++i) sum += (p[i] = expf(logits[i] - mx));
    for (int32_t i = 0; i < E; ++i) p[i] /= sum;
  }
  for (int32_t i = 0; i < E; ++i) choice[i] = bias ? p[i] + bias[i] : p[i];
  const int32_t G = r.n_group;
  if (r.grouped && G > 1 && r.topk_group < G) {
    const int32_t per = E / G;
    for (int32_t g = 0; g < G; ++g) {
      const float* c = choice + g * per;
      float a = -INFINITY, b = -INFINITY;
      for (int32_t i = 0; i < per; ++i) {
        if (c[i] > a) b = a, a = c[i];
        else if (c[i] > b) b = c[i];
      }
      gs[g] = r.group_max || per < 2 ? a : a + b;
    }
    // the topk_group best groups (ties to the lower group) are marked +inf
    for (int32_t k = 0; k < r.topk_group; ++k) {
      int32_t best = -1;
      for (int32_t g = 0; g < G; ++g)
        if (gs[g] != INFINITY && (best < 0 || gs[g] > gs[best])) best = g;
      gs[best] = INFINITY;
    }
    for (int32_t i = 0; i < E; ++i)
      if (gs[i / per] != INFINITY) choice[i] = -INFINITY;
  }
  float tot = 0.0f;
  for (int32_t k = 0; k < K; ++k) {
    int32_t best = 0;
    for (int32_t i = 1; i < E; ++i)
      if (choice[i] > choice[best]) best = i;
    ids[k] = best;
    choice[best] = -INFINITY;  // taken (the config leaves at least top_k experts outside the dropped groups)
    tot += p[best];
  }
  if (r.topk_softmax) {  // ids[0] holds the largest logit
    float sum = 0.0f;
    for (int32_t k = 0; k < K; ++k) sum += (wts[k] = expf(p[ids[k]] - p[ids[0]]));
    for (int32_t k = 0; k < K; ++k) wts[k] = float(double(wts[k] / sum) * r.routed_scale);
    return;
  }
  for (int32_t k = 0; k < K; ++k) {
    const float w = r.norm_topk ? p[ids[k]] / (tot + r.norm_eps) : p[ids[k]];
    wts[k] = float(double(w) * r.routed_scale);
  }
}

}  // namespace razor::cu
