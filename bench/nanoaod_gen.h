// NanoAOD-like events for the layout matrix (bench/layouts.py), generated inside RDataFrame.
//
// Every event draws from its own counter-based generator seeded by (seed, entry), so the same
// (seed, entry) gives the same event in any writer (TTree or RNTuple), any thread count and any
// entry range. 10 % of events hold a Z -> mu mu decay; the rest a soft-muon background.
#include <ROOT/RVec.hxx>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace hsbench {

using ROOT::RVecB;
using ROOT::RVecF;
using ROOT::RVecI;

constexpr int kHLT = 30;
constexpr int kFlags = 10;
constexpr double kPi = 3.14159265358979323846;
constexpr double kMuonMass = 0.1056583755;

// splitmix64: a tiny, well-mixed counter-based generator
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double u() { return (next() >> 11) * 0x1.0p-53; }
  double expo(double mean) { return -mean * std::log(1.0 - u()); }
  double gaus() { return std::sqrt(-2.0 * std::log(1.0 - u())) * std::cos(2.0 * kPi * u()); }
  double phi() { return kPi * (2.0 * u() - 1.0); }
  int poisson(double mean) {
    const double limit = std::exp(-mean);
    int k = 0;
    for (double p = u(); p > limit && k < 64; p *= u()) ++k;
    return k;
  }
};

struct Event {
  unsigned run = 1, luminosityBlock = 1;
  unsigned long long event = 0;
  unsigned nMuon = 0;
  RVecF Muon_pt, Muon_eta, Muon_phi, Muon_mass, Muon_dxy, Muon_dz, Muon_pfRelIso04_all;
  RVecI Muon_charge, Muon_jetIdx, Muon_nTrackerLayers;
  RVecB Muon_tightId, Muon_mediumId, Muon_looseId;
  unsigned nElectron = 0;
  RVecF Electron_pt, Electron_eta, Electron_phi, Electron_mass, Electron_pfRelIso03_all,
      Electron_dxy, Electron_dz;
  RVecI Electron_charge, Electron_cutBased;
  unsigned nJet = 0;
  RVecF Jet_pt, Jet_eta, Jet_phi, Jet_mass, Jet_btagDeepFlavB, Jet_area;
  RVecI Jet_jetId, Jet_puId, Jet_nConstituents;
  unsigned nPhoton = 0;
  RVecF Photon_pt, Photon_eta, Photon_phi, Photon_pfRelIso03_all;
  unsigned nTau = 0;
  RVecF Tau_pt, Tau_eta, Tau_phi, Tau_mass;
  RVecI Tau_charge, Tau_decayMode;
  float MET_pt = 0, MET_phi = 0, MET_sumEt = 0, MET_significance = 0;
  float PuppiMET_pt = 0, PuppiMET_phi = 0, PuppiMET_sumEt = 0;
  int PV_npvs = 0, PV_npvsGood = 0;
  float PV_x = 0, PV_y = 0, PV_z = 0, fixedGridRhoFastjetAll = 0;
  std::array<bool, kHLT> HLT{};
  std::array<bool, kFlags> Flag{};
};

struct Muon {
  double pt, eta, phi;
  int charge;
};

// two muons of a Z decay: Breit-Wigner mass, soft pt, isotropic decay, 1 % pt resolution
inline void z_decay(Rng &r, Muon out[2]) {
  double m = 91.1876 + 0.5 * 2.4952 * std::tan(kPi * (r.u() - 0.5));
  m = std::clamp(m, 40.0, 200.0);
  const double pt = r.expo(8.0), y = 1.2 * r.gaus(), ph = r.phi();
  const double mt = std::sqrt(m * m + pt * pt);
  const double E = mt * std::cosh(y);
  const double b[3] = {pt * std::cos(ph) / E, pt * std::sin(ph) / E, mt * std::sinh(y) / E};
  const double b2 = b[0] * b[0] + b[1] * b[1] + b[2] * b[2];
  const double gamma = 1.0 / std::sqrt(1.0 - b2);
  const double ps = std::sqrt(m * m / 4 - kMuonMass * kMuonMass), es = m / 2;
  const double ct = 2.0 * r.u() - 1.0, st = std::sqrt(1.0 - ct * ct), dp = r.phi();
  const int q = r.u() < 0.5 ? 1 : -1;
  for (int k = 0; k < 2; ++k) {
    const double s = k == 0 ? 1.0 : -1.0;
    const double p[3] = {s * ps * st * std::cos(dp), s * ps * st * std::sin(dp), s * ps * ct};
    const double bp = b[0] * p[0] + b[1] * p[1] + b[2] * p[2];
    const double f = b2 > 0 ? (gamma - 1.0) * bp / b2 + gamma * es : 0.0;
    const double lab[3] = {p[0] + f * b[0], p[1] + f * b[1], p[2] + f * b[2]};
    const double lpt = std::hypot(lab[0], lab[1]) * (1.0 + 0.01 * r.gaus());
    out[k] = {lpt, std::asinh(lab[2] / std::max(lpt, 1e-9)), std::atan2(lab[1], lab[0]),
              k == 0 ? q : -q};
  }
}

inline RVecF sorted_desc(RVecF v) {
  std::sort(v.begin(), v.end(), [](float a, float b) { return a > b; });
  return v;
}

inline Event make_event(unsigned long long entry, unsigned long long seed) {
  Rng r{seed * 0x100000001B3ull ^ (entry + 1) * 0xD1342543DE82EF95ull};
  r.next();
  Event e;
  e.event = entry + 1;
  e.run = 1 + static_cast<unsigned>(entry / 1000000);
  e.luminosityBlock = 1 + static_cast<unsigned>(entry / 2000);

  // muons: a Z pair in 10 % of events, soft background muons everywhere, sorted by pt
  Muon mu[16];
  int n = 0;
  if (r.u() < 0.10) {
    z_decay(r, mu);
    n = 2;
  }
  for (int k = r.poisson(0.6); k > 0 && n < 16; --k, ++n)
    mu[n] = {3.0 + r.expo(10.0), 2.4 * (2.0 * r.u() - 1.0), r.phi(), r.u() < 0.5 ? 1 : -1};
  std::sort(mu, mu + n, [](const Muon &a, const Muon &b) { return a.pt > b.pt; });
  e.nMuon = n;
  for (int i = 0; i < n; ++i) {
    e.Muon_pt.push_back(static_cast<float>(mu[i].pt));
    e.Muon_eta.push_back(static_cast<float>(mu[i].eta));
    e.Muon_phi.push_back(static_cast<float>(mu[i].phi));
    e.Muon_mass.push_back(static_cast<float>(kMuonMass));
    e.Muon_charge.push_back(mu[i].charge);
    e.Muon_dxy.push_back(static_cast<float>(0.002 * r.gaus()));
    e.Muon_dz.push_back(static_cast<float>(0.01 * r.gaus()));
    e.Muon_pfRelIso04_all.push_back(static_cast<float>(r.expo(0.1)));
    e.Muon_jetIdx.push_back(r.u() < 0.3 ? static_cast<int>(r.u() * 4) : -1);
    e.Muon_nTrackerLayers.push_back(8 + static_cast<int>(r.u() * 10));
    const double q = r.u();
    e.Muon_tightId.push_back(q < 0.85);
    e.Muon_mediumId.push_back(q < 0.92);
    e.Muon_looseId.push_back(q < 0.98);
  }

  e.nElectron = r.poisson(0.5);
  for (unsigned i = 0; i < e.nElectron; ++i) {
    e.Electron_pt.push_back(static_cast<float>(5.0 + r.expo(12.0)));
    e.Electron_eta.push_back(static_cast<float>(2.5 * (2.0 * r.u() - 1.0)));
    e.Electron_phi.push_back(static_cast<float>(r.phi()));
    e.Electron_mass.push_back(0.000511f);
    e.Electron_charge.push_back(r.u() < 0.5 ? 1 : -1);
    e.Electron_cutBased.push_back(static_cast<int>(r.u() * 5));
    e.Electron_pfRelIso03_all.push_back(static_cast<float>(r.expo(0.1)));
    e.Electron_dxy.push_back(static_cast<float>(0.002 * r.gaus()));
    e.Electron_dz.push_back(static_cast<float>(0.01 * r.gaus()));
  }
  e.Electron_pt = sorted_desc(e.Electron_pt);

  e.nJet = r.poisson(3.5);
  for (unsigned i = 0; i < e.nJet; ++i) {
    const double pt = 15.0 + r.expo(25.0);
    e.Jet_pt.push_back(static_cast<float>(pt));
    e.Jet_eta.push_back(static_cast<float>(4.7 * (2.0 * r.u() - 1.0)));
    e.Jet_phi.push_back(static_cast<float>(r.phi()));
    e.Jet_mass.push_back(static_cast<float>(pt * (0.05 + 0.15 * r.u())));
    e.Jet_btagDeepFlavB.push_back(static_cast<float>(std::pow(r.u(), 3.0)));
    e.Jet_area.push_back(static_cast<float>(0.5 + 0.05 * r.gaus()));
    e.Jet_jetId.push_back(r.u() < 0.9 ? 6 : 2);
    e.Jet_puId.push_back(static_cast<int>(r.u() * 8));
    e.Jet_nConstituents.push_back(5 + r.poisson(15.0));
  }
  e.Jet_pt = sorted_desc(e.Jet_pt);

  e.nPhoton = r.poisson(0.8);
  for (unsigned i = 0; i < e.nPhoton; ++i) {
    e.Photon_pt.push_back(static_cast<float>(10.0 + r.expo(10.0)));
    e.Photon_eta.push_back(static_cast<float>(2.5 * (2.0 * r.u() - 1.0)));
    e.Photon_phi.push_back(static_cast<float>(r.phi()));
    e.Photon_pfRelIso03_all.push_back(static_cast<float>(r.expo(0.2)));
  }
  e.Photon_pt = sorted_desc(e.Photon_pt);

  e.nTau = r.poisson(0.3);
  for (unsigned i = 0; i < e.nTau; ++i) {
    e.Tau_pt.push_back(static_cast<float>(20.0 + r.expo(15.0)));
    e.Tau_eta.push_back(static_cast<float>(2.3 * (2.0 * r.u() - 1.0)));
    e.Tau_phi.push_back(static_cast<float>(r.phi()));
    e.Tau_mass.push_back(static_cast<float>(0.5 + r.u()));
    e.Tau_charge.push_back(r.u() < 0.5 ? 1 : -1);
    e.Tau_decayMode.push_back(static_cast<int>(r.u() * 12));
  }
  e.Tau_pt = sorted_desc(e.Tau_pt);

  e.MET_pt = static_cast<float>(r.expo(25.0));
  e.MET_phi = static_cast<float>(r.phi());
  e.MET_sumEt = static_cast<float>(300.0 + r.expo(400.0));
  e.MET_significance = static_cast<float>(r.expo(3.0));
  e.PuppiMET_pt = static_cast<float>(e.MET_pt * (0.9 + 0.2 * r.u()));
  e.PuppiMET_phi = static_cast<float>(e.MET_phi + 0.1 * r.gaus());
  e.PuppiMET_sumEt = static_cast<float>(e.MET_sumEt * (0.8 + 0.1 * r.u()));
  e.PV_npvs = 1 + r.poisson(30.0);
  e.PV_npvsGood = std::max(1, e.PV_npvs - r.poisson(2.0));
  e.PV_x = static_cast<float>(0.01 * r.gaus());
  e.PV_y = static_cast<float>(0.01 * r.gaus());
  e.PV_z = static_cast<float>(4.0 * r.gaus());
  e.fixedGridRhoFastjetAll = static_cast<float>(10.0 + 5.0 * r.u() + 0.5 * e.PV_npvs);
  for (int i = 0; i < kHLT; ++i) e.HLT[i] = r.u() < 0.02 + 0.01 * i;
  for (int i = 0; i < kFlags; ++i) e.Flag[i] = r.u() < 0.995;
  return e;
}

}  // namespace hsbench
