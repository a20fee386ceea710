package main

import (
	"os"
	"path/filepath"
)

// templateYAML is the benchmark's template: two services with images, run
// by the Deployments of the team's own manifests in k8s/ (so render
// generates nothing for them: the manifests already have Deployments and
// Services named web and api).
const templateYAML = `apiVersion: sandpit/v1
name: shop
services:
  web:
    image: registry.example.com/shop-web:v1.0.0
    ports: [{name: http, port: 8080}]
  api:
    image: registry.example.com/shop-api:v1.0.0
    ports: [{name: http, port: 9090}]
endpoints:
  app:
    routes: [{path: /api, to: api:http}, {path: /, to: web:http}]
kubernetes:
  manifests: k8s
`

// manifestsYAML is k8s/app.yaml: two Deployments, two Services, a
// ConfigMap and an Ingress, as a team would deploy them to production.
const manifestsYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
  namespace: production
data:
  LOG_LEVEL: info
  FEATURE_X: "off"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: production
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop-web:v1.0.0
        envFrom: [{configMapRef: {name: shop-config}}]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: production
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: registry.example.com/shop-api:v1.0.0
        envFrom: [{configMapRef: {name: shop-config}}]
        ports: [{name: http, containerPort: 9090}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: production
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: production
spec:
  selector: {app: api}
  ports: [{name: http, port: 9090, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: production
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /api
        pathType: Prefix
        backend: {service: {name: api, port: {name: http}}}
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {name: http}}}
`

// expectedKinds is what every sandbox must hold once applied, by kind:
// the check that sandpit and kubectl applied the same objects.
var expectedKinds = map[string]int{"Deployment": 2, "Service": 2, "ConfigMap": 1, "Ingress": 1}

// writeSource writes the template and its manifests into dir.
func writeSource(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "k8s"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sandpit.yaml"), []byte(templateYAML), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "k8s", "app.yaml"), []byte(manifestsYAML), 0o644)
}
