// Interactive documentation of this server's API, read from /openapi.json.
// "Try it out" sends requests to this server: authorize with a bearer
// access token or an API token first.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,
});
