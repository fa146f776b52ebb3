"""Write an RNTuple with a class stored as a streamer (unsplit) field, which uproot cannot
read: ``python write_streamer_field.py OUT.root`` (ROOT from PyPI; tests run it as a child)."""

import sys

import ROOT

ROOT.gROOT.SetBatch(True)
ROOT.gInterpreter.Declare(r"""
#include <ROOT/RField.hxx>
#include <ROOT/RNTupleModel.hxx>
#include <ROOT/RNTupleWriter.hxx>
#include <TObjString.h>
void hs_write_streamer_field(const char *path) {
  auto model = ROOT::RNTupleModel::Create();
  auto x = model->MakeField<float>("x");
  model->AddField(std::make_unique<ROOT::RStreamerField>("label", "TObjString"));
  auto writer = ROOT::RNTupleWriter::Recreate(std::move(model), "nt", path);
  auto label = writer->GetModel().GetDefaultEntry().GetPtr<TObjString>("label");
  for (int i = 0; i < 100; ++i) {
    *x = i;
    label->SetString("event");
    writer->Fill();
  }
}
""")
ROOT.hs_write_streamer_field(sys.argv[1])
