// Where the API is. In WeChat it must be an HTTPS domain configured in the MP console
// (服务器域名); in DevTools with "不校验合法域名" a local server works.
module.exports = {
  apiBase: 'http://127.0.0.1:8080',
  // The subscribe-message templates are loaded from GET /api/me/subscriptions.
};
