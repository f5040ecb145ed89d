// Live footprint of a recipe on a model, from the inventory's tensor shapes only (no weights): core's footprint
// over shapes (core/model/footprint.h: footprint::add, add_tensor_footprint, the accounting of
// `razor footprint`), so to_json() gives the fields of `razor footprint --json`.
//
// The model is "compiled" once per recipe: every tensor the per-expert bits cannot change (protected,
// overridden, other roles) is added once into a fixed part with add_tensor_footprint; every routed-expert tensor
// whose bits come from expert_bits / the routed_expert role is reduced to its cell (layer, expert): parameters,
// scale bits (same group rule) and stored bits. An edit then costs one pass over the layers x experts cells
// (12,288 for Qwen3.5-122B), not over the tensors and their regexes.
#pragma once
#include <QString>
#include <QVector>
#include <vector>

#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/recipe.h"

struct ModelInventory;

class FootprintModel {
 public:
  // Builds the tensor list from the inventory; returns false (and the reason) when it holds no tensors.
  bool setInventory(const ModelInventory& inv, QString* error = nullptr);
  // Recomputes (regexes run once per tensor here). False, with the reason, when a recipe pattern reaches the
  // regex match limits on a tensor name (those tensors then count as kept).
  bool setRecipe(const razor::recipe& r, QString* error = nullptr);
  const razor::recipe& recipe() const { return m_recipe; }

  int layers() const { return m_layers; }
  int experts() const { return m_experts; }
  bool hasCell(int layer, int expert) const;
  qint64 cellParams(int layer, int expert) const;
  // Bits a cell gets (16 = kept); editable cells only, NaN for a cell without routed-expert tensors.
  double expertBits(int layer, int expert) const;
  double defaultExpertBits() const;  // the recipe's routed_expert role bits, or 16
  // Edits the recipe's expert_bits (creating the layer's vector from the current bits when absent).
  void setExpertBits(int layer, int expert, double bits);
  void setLayerBits(int layer, double bits);
  QVector<double> bitsGrid() const;  // layers x experts, row-major

  razor::footprint result() const;   // O(cells)
  // Parameter-weighted average bits of the routed experts of one layer (NaN when none are editable).
  double layerAverageBits(int layer) const;
  qint64 layerParams(int layer) const;

 private:
  struct Cell {
    qint64 params = 0;
    double scaleBits = 0;  // sum of params x scale bits per param of its tensors
    double keptBits = 0;   // sum of params x stored bits (used when the cell is kept at 16)
  };
  std::vector<razor::tensor_entry> m_tensors;
  razor::recipe m_recipe;
  razor::footprint m_fixed;
  std::vector<Cell> m_cells;
  int m_layers = 0, m_experts = 0;
};
