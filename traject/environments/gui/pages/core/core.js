// traject's page core for built-in GUI tasks. It follows MiniWoB++'s conventions, so that one
// driver runs both: a page defines genProblem(); window.onload calls core.startEpisode();
// the driver seeds Math.random with Math.seedrandom(seed) and calls core.startEpisodeReal();
// the page ends the episode with core.endEpisode(reward, timeProportional, reason), which sets
// the WOB_* globals the driver reads. Extensions: core.submitAnswer(text) hands the agent's
// done(answer) to the page's checkAnswer(text) if it has one; core.target is the element the
// next correct action acts on (pages update it as the task goes on), for grounding rewards.
var core = {};

// --- seeded randomness: Math.seedrandom(seed) replaces Math.random with a seeded generator.
(function () {
  function hashSeed(text) {
    var h = 1779033703 ^ text.length;
    for (var i = 0; i < text.length; i++) {
      h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
      h = (h << 13) | (h >>> 19);
    }
    return function () {
      h = Math.imul(h ^ (h >>> 16), 2246822507);
      h = Math.imul(h ^ (h >>> 13), 3266489909);
      return (h ^= h >>> 16) >>> 0;
    };
  }
  function sfc32(a, b, c, d) {
    return function () {
      a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
      var t = (a + b) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      d = (d + 1) | 0;
      t = (t + d) | 0;
      c = (c + t) | 0;
      return (t >>> 0) / 4294967296;
    };
  }
  var nativeRandom = Math.random;
  Math.seedrandom = function (seed) {
    if (seed === undefined || seed === null) { Math.random = nativeRandom; return; }
    var next = hashSeed(String(seed));
    Math.random = sfc32(next(), next(), next(), next());
    for (var i = 0; i < 12; i++) Math.random();
  };
})();

core.randi = function (min, max) { return Math.floor(Math.random() * (max - min) + min); };
core.randf = function (min, max) { return Math.random() * (max - min) + min; };
core.sample = function (list) { return list[core.randi(0, list.length)]; };
core.shuffle = function (list) {
  for (var i = list.length - 1; i > 0; i--) {
    var j = Math.floor(Math.random() * (i + 1));
    var tmp = list[i]; list[i] = list[j]; list[j] = tmp;
  }
  return list;
};

// --- episode state read by the driver
var WOB_REWARD_GLOBAL = 0;      // reward, scaled by time when the page asks for it
var WOB_RAW_REWARD_GLOBAL = 0;  // reward without the time scaling
var WOB_REWARD_REASON = null;
var WOB_DONE_GLOBAL = false;
var WOB_EPISODE_ID = 0;
var WOB_TASK_READY = true;
var WOB_DATA_MODE = 'default';
// ms. traject's own pages have no timer unless they set one (an LLM turn can take seconds);
// MiniWoB++'s core defaults to 10000 and its pages may set their own. The driver may override it.
core.EPISODE_MAX_TIME = null;
core.EP_TIMER = null;
core.ept0 = null;
core.target = null;
core.targetAction = 'click';
core.setTarget = function (element, action) {
  core.target = element;
  core.targetAction = action || 'click';
};

core.setDataMode = function (mode) { WOB_DATA_MODE = mode; };

core.startEpisode = function () {
  // The driver starts the episode itself (after seeding); nothing to show before that.
};

core.startEpisodeReal = function () {
  var result = document.getElementById('traject-result');
  if (result) result.parentNode.removeChild(result);
  core.setTarget(null);
  genProblem();
  WOB_DONE_GLOBAL = false;
  WOB_REWARD_GLOBAL = 0;
  WOB_RAW_REWARD_GLOBAL = 0;
  WOB_REWARD_REASON = null;
  document.body.scrollTop = document.documentElement.scrollTop = 0;
  core.ept0 = new Date().getTime();
  if (core.EP_TIMER !== null) clearTimeout(core.EP_TIMER);
  core.EP_TIMER = core.EPISODE_MAX_TIME ?
      setTimeout(function () { core.endEpisode(-1, false, 'timed out'); }, core.EPISODE_MAX_TIME) : 0;
};

core.endEpisode = function (reward, timeProportional, reason) {
  if (core.EP_TIMER === null) return;  // only the first end of an episode counts
  if (core.EP_TIMER) clearTimeout(core.EP_TIMER);
  core.EP_TIMER = null;
  WOB_RAW_REWARD_GLOBAL = reward;
  WOB_REWARD_REASON = reason === undefined ? null : reason;
  // MiniWoB++'s time scaling: reward * max(0, 1 - elapsed / EPISODE_MAX_TIME); no timer, no scaling.
  if (timeProportional && core.EPISODE_MAX_TIME) {
    var dt = new Date().getTime() - core.ept0;
    reward = reward * Math.max(0, 1.0 - dt / core.EPISODE_MAX_TIME);
  }
  WOB_REWARD_GLOBAL = reward;
  WOB_DONE_GLOBAL = true;
  WOB_EPISODE_ID++;
  var banner = document.createElement('div');
  banner.id = 'traject-result';
  banner.className = reward > 0 ? 'win' : 'lose';
  banner.textContent = 'Episode over: reward ' + reward.toFixed(2);
  document.body.appendChild(banner);
};

core.getUtterance = function () {
  var query = document.getElementById('query');
  return query.textContent.replace(/\s+/g, ' ').trim();
};

// done(answer): pages that ask a question define checkAnswer(text) -> reward.
core.submitAnswer = function (text) {
  if (typeof checkAnswer === 'function') {
    var r = checkAnswer(String(text));
    core.endEpisode(r, false, 'answer ' + JSON.stringify(String(text)));
  }
};

// Helpers for the tasks.
core.WORDS = ['apple', 'river', 'stone', 'cloud', 'tiger', 'lemon', 'piano', 'rocket', 'candle',
  'garden', 'silver', 'winter', 'forest', 'castle', 'pencil', 'orange', 'violet', 'button',
  'planet', 'mirror', 'dragon', 'harbor', 'meadow', 'falcon', 'marble', 'copper', 'velvet'];
core.NAMES = ['Alice', 'Bruno', 'Chen', 'Dana', 'Emeka', 'Farah', 'Goran', 'Hana', 'Ivan', 'Jun',
  'Kemal', 'Lena', 'Mateo', 'Nadia', 'Omar', 'Priya'];
core.COLORS = ['red', 'green', 'blue', 'orange', 'purple', 'gray'];
core.pick = function (list, k) { return core.shuffle(list.slice()).slice(0, k); };
core.el = function (tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in (attrs || {})) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
};
core.area = function () {
  var area = document.getElementById('area');
  area.innerHTML = '';
  return area;
};
core.setQuery = function (text) { document.getElementById('query').textContent = text; };

window.addEventListener('load', function () { core.startEpisode(); });
